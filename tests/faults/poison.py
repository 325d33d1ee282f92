"""Messages no consumer can process, one per reason a consumer parks a message for without
trying it (``shared.envelope.decode`` and ``verify``): what the poison test and the soak publish.

Each body carries a marker, so a parked copy can be told apart and traced back to what was
published. They go on an origin's real subjects, where a consumer meets them among valid events.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from shared.envelope import MAX_MESSAGE_BYTES, ORIGIN_HEADER, POSITION_HEADER
from shared.events import RequestReceived
from shared.subjects import event_subject

#: The reasons, as the ``Kring-DLQ-Reason`` header names them.
MALFORMED_JSON = "malformed-json"
UNKNOWN_TYPE = "unknown-type"
INVALID_DATA = "invalid-data"
OVERSIZED = "oversized"
MALFORMED_HEADER = "malformed-header"
PROVENANCE = "provenance-mismatch"
REASONS = (MALFORMED_JSON, UNKNOWN_TYPE, INVALID_DATA, OVERSIZED, MALFORMED_HEADER, PROVENANCE)

#: Far beyond any position a store reaches in a test: never mistaken for a real event.
POSITION_BASE = 1_000_000_000


@dataclass(frozen=True)
class Poison:
    reason: str
    subject: str
    body: bytes
    marker: str
    #: Headers besides ``Nats-Msg-Id`` (what a relay would set, or a spoiled copy of it).
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def msg_id(self) -> str:
        """The ``Nats-Msg-Id`` it is published under."""
        return f"poison-{self.marker}"

    @property
    def headers(self) -> dict[str, str]:
        """What it is published with."""
        return {"Nats-Msg-Id": self.msg_id, **self.extra_headers}


def _envelope(origin: str, number: int, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    case_id = str(data.get("case_id") or uuid.uuid4())
    return {
        "specversion": "1.0",
        "id": f"{origin}:{POSITION_BASE + number}",
        "source": f"/kring/{origin}",
        "type": event_type,
        "subject": case_id,
        "time": "2026-03-02T10:00:00+00:00",
        "datacontenttype": "application/json",
        "kringorigin": origin,
        "kringposition": POSITION_BASE + number,
        "data": data,
    }


def poison(reason: str, number: int, origin: str = "intake") -> Poison:
    """The ``number``-th poison message of ``reason`` on ``origin``'s subjects."""
    marker = f"{reason}-{number}-{uuid.uuid4().hex[:8]}"
    subject = event_subject(origin, "request-received")
    valid_data = {
        "case_id": str(uuid.uuid4()),
        "model": "family",
        "region": "Utrecht",
        "languages": ["nl"],
        "submitted_at": "2026-03-02T10:00:00+00:00",
        "accepted_at": "2026-03-02T10:00:00+00:00",
    }
    body: bytes
    extra: dict[str, str] = {}
    if reason == MALFORMED_JSON:
        body = b'{"specversion": "1.0", "id": "' + marker.encode() + b'", "data": {'
    elif reason == UNKNOWN_TYPE:
        envelope = _envelope(origin, number, "nl.kring.no-such-event.v1", valid_data)
        body = json.dumps(envelope | {"kringmarker": marker}).encode()
    elif reason == INVALID_DATA:
        # A sound envelope of a known type whose data breaks the contract (no model, a region
        # that is not a string, no timestamps).
        data = {"case_id": valid_data["case_id"], "region": 42, "languages": "nl"}
        envelope = _envelope(origin, number, RequestReceived.type_name(), data)
        body = json.dumps(envelope | {"kringmarker": marker}).encode()
    elif reason == OVERSIZED:
        # Valid in every other way; only its size is wrong.
        envelope = _envelope(origin, number, RequestReceived.type_name(), valid_data)
        padding = "x" * (MAX_MESSAGE_BYTES + 4096)
        body = json.dumps(envelope | {"kringmarker": marker, "kringpadding": padding}).encode()
    elif reason == MALFORMED_HEADER:
        # A sound event whose Kring-Position header is not a position (issue 9: one such
        # message stalled intake's relay on every start).
        envelope = _envelope(origin, number, RequestReceived.type_name(), valid_data)
        body = json.dumps(envelope | {"kringmarker": marker}).encode()
        extra = {ORIGIN_HEADER: origin, POSITION_HEADER: "abc"}
    elif reason == PROVENANCE:
        # A sound event that says it comes from somewhere else than its subject and headers.
        envelope = _envelope("forged", number, RequestReceived.type_name(), valid_data)
        body = json.dumps(envelope | {"kringmarker": marker}).encode()
        extra = {ORIGIN_HEADER: origin, POSITION_HEADER: str(POSITION_BASE + number)}
    else:
        raise ValueError(f"no poison for {reason!r}")
    return Poison(reason=reason, subject=subject, body=body, marker=marker, extra_headers=extra)
