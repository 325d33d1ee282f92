"""What a partner organisation receives: the events of its own feed, one contract for NATS and
for webhooks (``docs/partners.md`` explains each field to a partner).

A partner event is thin: the case id, the plan's version, the agreements the organisation takes
part in (ids and dates), the next meeting, and where to fetch its copy (a claim check: the copy
itself comes from plans, to the organisation's own credential, logged). Never a name, an
address or the plan's text, so nothing on a partner's stream ever needs erasing.

Each is a CloudEvents 1.0 event in structured JSON: ``id`` a UUID that stays the same on every
redelivery and retry (de-duplicate by it), ``source`` the service's (``KRING_PARTNERS_SOURCE``:
the NL GOV profile's ``urn:nld:oin:<OIN>:systeem:<system>`` where a Dutch government partner
needs it), ``subject`` the case id, ``sequence`` an increasing number (zero-padded, so it also
sorts as text) that orders a case's events, ``dataref`` where the copy is for ``plan-shared``.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import AnyHttpUrl, AwareDatetime, BaseModel, ConfigDict, Field

from shared.events import AgreementRef

#: The default ``source``: Kring's partner feed.
DEFAULT_SOURCE = "/kring/partners"
SEQUENCE_DIGITS = 20
#: The content type of a webhook's body: a CloudEvent in structured mode.
CLOUDEVENTS_JSON = "application/cloudevents+json"


class RevocationReason(StrEnum):
    """Why a partner may no longer keep or fetch a case's plan."""

    CONSENT_WITHDRAWN = "consent_withdrawn"  # the family withdrew consent to share with it
    CASE_ERASED = "case_erased"  # the case was erased (right to erasure)


class CopyLinks(BaseModel):
    """Where the organisation fetches its copy of this version, with its own credential."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    json_url: AnyHttpUrl = Field(alias="json")
    pdf: AnyHttpUrl
    html: AnyHttpUrl


class PartnerEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: ClassVar[str]
    version: ClassVar[int] = 1

    case_id: UUID

    @classmethod
    def type_name(cls) -> str:
        """The CloudEvents ``type``, e.g. ``nl.kring.partner.plan-shared.v1``."""
        return f"nl.kring.partner.{cls.name}.v{cls.version}"

    @classmethod
    def schema_uri(cls) -> str:
        return f"urn:kring:schema:partner.{cls.name}:{cls.version}"


class PartnerPlanShared(PartnerEvent):
    """A version of a case's plan is shared with your organisation: fetch your copy."""

    name = "plan-shared"

    plan_version: int = Field(ge=1)
    shared_at: AwareDatetime
    #: The agreements your organisation takes part in: ids (stable across versions) and dates.
    agreements: list[AgreementRef] = Field(default_factory=list)
    next_meeting_on: date | None = None
    copy_links: CopyLinks = Field(alias="copy")


class PartnerPlanRevoked(PartnerEvent):
    """You may no longer keep or fetch this case's plan: delete your copy. Nothing more of the
    case comes to you."""

    name = "plan-revoked"

    reason: RevocationReason
    revoked_at: AwareDatetime


PARTNER_EVENT_CLASSES: tuple[type[PartnerEvent], ...] = (PartnerPlanShared, PartnerPlanRevoked)
PARTNER_EVENTS_BY_TYPE = {c.type_name(): c for c in PARTNER_EVENT_CLASSES}
PARTNER_EVENTS_BY_NAME = {c.name: c for c in PARTNER_EVENT_CLASSES}


class PartnerEnvelope(BaseModel):
    """The CloudEvents envelope of every partner event, as sent."""

    model_config = ConfigDict(extra="forbid")

    specversion: Literal["1.0"]
    id: UUID
    source: str = Field(min_length=1)
    type: str
    subject: str
    time: AwareDatetime
    datacontenttype: Literal["application/json"]
    dataschema: str
    #: Orders a case's events (compare as numbers or as text).
    sequence: str = Field(pattern=f"^[0-9]{{{SEQUENCE_DIGITS}}}$")
    #: Where the copy is (``plan-shared`` only).
    dataref: AnyHttpUrl | None = None
    data: dict[str, Any]


def sequence_of(position: int) -> str:
    return str(position).zfill(SEQUENCE_DIGITS)


def encode_partner_event(
    event: PartnerEvent, *, event_id: UUID, source: str, time: datetime, position: int
) -> bytes:
    """The bytes a partner receives, the same on NATS and in a webhook's body, and the same on
    every retry (so their signature differs only by the attempt's timestamp)."""
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(event_id),
        "source": source,
        "type": event.type_name(),
        "subject": str(event.case_id),
        "time": time.isoformat(),
        "datacontenttype": "application/json",
        "dataschema": event.schema_uri(),
        "sequence": sequence_of(position),
    }
    if isinstance(event, PartnerPlanShared):
        envelope["dataref"] = str(event.copy_links.json_url)
    envelope["data"] = event.model_dump(mode="json", by_alias=True)
    return json.dumps(envelope, separators=(",", ":")).encode()


def decode_partner_event(raw: bytes) -> tuple[PartnerEnvelope, PartnerEvent]:
    """Parse a partner event as a strict consumer would (``ValueError`` when it is not one)."""
    envelope = PartnerEnvelope.model_validate_json(raw)
    event_class = PARTNER_EVENTS_BY_TYPE.get(envelope.type)
    if event_class is None:
        raise ValueError(f"unknown partner event type {envelope.type!r}")
    event = event_class.model_validate(envelope.data)
    if str(event.case_id) != envelope.subject:
        raise ValueError("subject is not the case id")
    return envelope, event
