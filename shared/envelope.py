"""The CloudEvents 1.0 structured-JSON envelope around every integration event.

``id`` is ``<origin>:<position>`` (unique per source, and the JetStream ``Nats-Msg-Id``), so a
re-published event is recognisably the same event. ``kringorigin`` and ``kringposition`` are
CloudEvents extension attributes carrying the same facts for consumers' tracking.

Every version of an event still on the stream is read (``EVENTS_BY_TYPE``); ``decode`` upcasts an
older one to the current version (``shared.events.SupersededEvent``), so whoever reads the stream
handles only current classes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Union
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
)

from shared.events import EVENTS_BY_TYPE, IntegrationEvent, upcast

MAX_MESSAGE_BYTES = 256 * 1024
ORIGIN_HEADER = "Kring-Origin"
POSITION_HEADER = "Kring-Position"
#: Set by a relay that found another message under its event's id (``shared.relay``): the
#: stream sequence of that message.
CONFLICT_HEADER = "Kring-Conflict"
_POSITION = re.compile(r"[1-9][0-9]{0,18}")


class PoisonMessageError(Exception):
    """A message that no number of retries will make processable."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class CloudEventEnvelope(BaseModel):
    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"]
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    subject: str
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    kringorigin: str = Field(min_length=1)
    kringposition: int = Field(ge=1)
    data: dict[str, Any]


@dataclass(frozen=True)
class Delivered:
    """An integration event as it came off the bus, with where it came from."""

    event: IntegrationEvent
    origin: str
    position: int
    event_id: str
    time: datetime
    #: The CloudEvents ``source`` (``/kring/<origin>``).
    source: str | None = None

    @property
    def case_id(self) -> UUID:
        return self.event.case_id


def message_id(origin: str, position: int) -> str:
    return f"{origin}:{position}"


def message_headers(origin: str, position: int) -> dict[str, str]:
    """The headers every relayed message carries (``Nats-Msg-Id`` first: JetStream de-duplicates
    by it)."""
    return {
        "Nats-Msg-Id": message_id(origin, position),
        ORIGIN_HEADER: origin,
        POSITION_HEADER: str(position),
    }


def parse_position(value: object) -> int | None:
    """A ``Kring-Position`` header's value as a position, or None if it is not one."""
    if isinstance(value, str) and _POSITION.fullmatch(value):
        return int(value)
    return None


def verify(delivered: Delivered, subject: str, headers: Mapping[str, str] | None) -> None:
    """Where a message says it comes from must agree everywhere: the subject it was published
    on is its type's subject under its origin, and ``source``, ``id``, ``kringorigin``,
    ``kringposition`` and the ``Kring-Origin`` / ``Kring-Position`` headers name the same origin
    and position. The server lets only an origin publish on its subjects; this is what a
    consumer checks on top (a copy parked and replayed, a message planted on an open server).
    Raise ``PoisonMessageError`` (``malformed-header`` or ``provenance-mismatch``) naming what
    disagrees, never a value that could be personal."""
    headers = headers or {}
    origin, position = delivered.origin, delivered.position
    raw_position = headers.get(POSITION_HEADER)
    if raw_position is not None and parse_position(raw_position) is None:
        raise PoisonMessageError("malformed-header", f"{POSITION_HEADER} is not a position")
    problems = []
    expected = delivered.event.subject()
    if subject != expected:
        problems.append(f"not published on {expected}")
    if origin != delivered.event.origin:
        problems.append(f"kringorigin is not {delivered.event.origin}, which publishes this type")
    if delivered.source is not None and delivered.source != f"/kring/{origin}":
        problems.append(f"source is not /kring/{origin}")
    if delivered.event_id != message_id(origin, position):
        problems.append(f"id is not {message_id(origin, position)}")
    if headers.get(ORIGIN_HEADER) != origin:
        problems.append(f"{ORIGIN_HEADER} header is not {origin!r}")
    if raw_position is None or parse_position(raw_position) != position:
        problems.append(f"{POSITION_HEADER} header is not {position}")
    if problems:
        raise PoisonMessageError("provenance-mismatch", "; ".join(problems)[:500])


def encode(event: IntegrationEvent, *, origin: str, position: int, time: datetime) -> bytes:
    envelope = {
        "specversion": "1.0",
        "id": message_id(origin, position),
        "source": f"/kring/{origin}",
        "type": event.type_name(),
        "subject": str(event.case_id),
        "time": time.isoformat(),
        "datacontenttype": "application/json",
        "dataschema": event.schema_uri(),
        "kringorigin": origin,
        "kringposition": position,
        "data": event.model_dump(mode="json"),
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def _typed_envelopes() -> TypeAdapter[Any]:
    """One envelope model per event type, told apart by ``type``: a valid message is parsed and
    validated in one pass over its bytes (half the cost of envelope first, data after, which
    a replay feels)."""
    models = []
    for event_class in EVENTS_BY_TYPE.values():
        of_this_type: Any = Literal[event_class.type_name()]
        models.append(
            create_model(
                f"{event_class.__name__}Envelope",
                __base__=CloudEventEnvelope,
                type=(of_this_type, ...),
                data=(event_class, ...),
            )
        )
    any_envelope: Any = Annotated[Union[tuple(models)], Field(discriminator="type")]  # noqa: UP007
    return TypeAdapter(any_envelope)


_TYPED = _typed_envelopes()


def decode(raw: bytes) -> Delivered:
    """Parse and validate one message; raise ``PoisonMessageError`` saying why it cannot be."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise PoisonMessageError("oversized", f"{len(raw)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        typed: Any = _TYPED.validate_json(raw)
    except ValidationError:
        return _decode_saying_why(raw)  # poison, most likely: find out which kind
    if str(typed.data.case_id) != typed.subject:
        raise PoisonMessageError("invalid-data", "subject is not the case id")
    return Delivered(
        event=upcast(typed.data),
        origin=typed.kringorigin,
        position=typed.kringposition,
        event_id=typed.id,
        time=typed.time,
        source=typed.source,
    )


def _decode_saying_why(raw: bytes) -> Delivered:
    """The envelope first, then its data: slower, but names what is wrong."""
    try:
        envelope = CloudEventEnvelope.model_validate_json(raw)
    except ValidationError as error:
        reason = "malformed-json" if _is_json_error(error) else "invalid-envelope"
        raise PoisonMessageError(reason, _summary(error)) from None
    event_class = EVENTS_BY_TYPE.get(envelope.type)
    if event_class is None:
        raise PoisonMessageError("unknown-type", envelope.type)
    try:
        event = event_class.model_validate(envelope.data)
    except ValidationError as error:
        raise PoisonMessageError("invalid-data", _summary(error)) from None
    if str(event.case_id) != envelope.subject:
        raise PoisonMessageError("invalid-data", "subject is not the case id")
    return Delivered(
        event=upcast(event),
        origin=envelope.kringorigin,
        position=envelope.kringposition,
        event_id=envelope.id,
        time=envelope.time,
        source=envelope.source,
    )


def _is_json_error(error: ValidationError) -> bool:
    return any(e["type"] == "json_invalid" for e in error.errors())


def _summary(error: ValidationError) -> str:
    """Field paths and messages only: never the input values, which may be personal data."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
        for e in error.errors(include_input=False)
    )[:500]
