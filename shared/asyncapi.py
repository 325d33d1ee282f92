"""Each service's AsyncAPI 3.0 document (``/asyncapi.json``): the contract as it is on the wire.

Made from the code that makes the wire, not from a framework's idea of it: every message is the
CloudEvents 1.0 envelope ``shared.envelope`` writes, with the event's pydantic schema as its
``data``, the headers a relay really sets (``Nats-Msg-Id``, ``Nats-Expected-Stream``, which
nats-py adds for the stream named, ``Kring-Origin``, ``Kring-Position``, and ``Kring-Conflict``
where it re-publishes past a taken id), the stream it
is kept in, and an example that is the bytes ``encode`` makes of an example event. A service's
document names what it publishes (``send``) and what it consumes (``receive``: the same channel
and payload, through its durable consumer). The partners service's adds each partner's feed
(a channel per event on ``kring-partner.{organisation}.…``, stream ``KRING_PARTNER_{organisation}``)
and its webhooks (Standard Webhooks' headers).

``tests/e2e/test_contract.py`` compares every documented message with what really went over
the stream; ``make test`` validates every document with the AsyncAPI CLI.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from shared.envelope import CONFLICT_HEADER, ORIGIN_HEADER, POSITION_HEADER, encode, message_headers
from shared.events import (
    EVENT_CLASSES,
    PARTNER_REGISTRY_ID,
    AgreementOutcome,
    AgreementRef,
    CaseEndedWithoutConference,
    CaseErased,
    ConferenceHeld,
    ConferencePart,
    CoordinatorAssigned,
    CoordinatorWishes,
    Ending,
    FirstContactMade,
    FollowUpConferenceRequested,
    FollowUpDue,
    IntegrationEvent,
    OpenRequestStage,
    OutcomeRecorded,
    ParticipantConsentWithdrawn,
    ParticipantRef,
    ParticipantRole,
    PartnerRegistered,
    PartnerRevoked,
    PlanDistributed,
    PlanRevisionRequested,
    PlanShared,
    PlanSharingWithdrawn,
    Rating,
    RatingGroup,
    RatingsRecorded,
    Recipient,
    RequesterRelation,
    RequestReceived,
    RequestSubmitted,
    RequestWithdrawn,
    RequestWithdrawnBeforeAcceptance,
    SharedWith,
    StopReason,
)
from shared.partner_feed import (
    CLOUDEVENTS_JSON,
    DEFAULT_SOURCE,
    PARTNER_EVENT_CLASSES,
    SEQUENCE_DIGITS,
    CopyLinks,
    PartnerEvent,
    PartnerPlanRevoked,
    PartnerPlanShared,
    RevocationReason,
    encode_partner_event,
)
from shared.permissions import PARTNERS_SERVICE, durable_name
from shared.subjects import (
    ORGANISATION_ID,
    PARTNER_CONSUMER,
    PARTNER_PREFIX,
    PARTNER_STREAM_PREFIX,
    STREAM,
)

VERSION = "3.1.0"
REF = "#/components/schemas/{model}"
_CASE = UUID("0b6c3f1e-8d2a-4c5b-9e7f-1a2b3c4d5e6f")
_AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _examples() -> dict[type[IntegrationEvent], IntegrationEvent]:
    base: dict[str, Any] = {"case_id": _CASE, "model": "family"}
    events: list[IntegrationEvent] = [
        RequestSubmitted(
            **base,
            region="Utrecht",
            requester_relation=RequesterRelation.FAMILY,
            informational_talk=False,
            follow_up_of=None,
            submitted_at=_AT,
        ),
        RequestWithdrawnBeforeAcceptance(
            **base, region="Utrecht", stage=OpenRequestStage.CLARIFIED, withdrawn_at=_AT
        ),
        RequestReceived(
            **base,
            region="Utrecht",
            languages=["nl"],
            has_minimum_requirements=True,
            coordinator_wishes=CoordinatorWishes(gender="f"),
            involved_organisations=["Jeugdzorg Utrecht"],
            submitted_at=_AT,
            accepted_at=_AT,
        ),
        RequestWithdrawn(**base, withdrawn_at=_AT),
        CoordinatorAssigned(
            **base, coordinator_ids=["c-ana"], assigned_at=_AT, first_contact_due=_AT
        ),
        FirstContactMade(**base, contacted_at=_AT),
        ConferenceHeld(
            **base,
            held_on=date(2026, 4, 1),
            parts=list(ConferencePart),
            attendance={ConferencePart.PLAN_MAKING: {"family": 5, "network": 2}},
            participants=[
                ParticipantRef(participant_id="p1", role=ParticipantRole.CENTRAL_PERSON),
                ParticipantRef(
                    participant_id="p4",
                    role=ParticipantRole.PROFESSIONAL,
                    organisation="Jeugdzorg Utrecht",
                ),
            ],
            attended={ParticipantRole.CENTRAL_PERSON: 1, ParticipantRole.PROFESSIONAL: 1},
        ),
        ParticipantConsentWithdrawn(**base, participant_id="p4", withdrawn_at=_AT),
        CaseEndedWithoutConference(
            **base, ending=Ending.STOPPED, reason=StopReason.NETWORK_NOT_WILLING, ended_at=_AT
        ),
        PlanDistributed(
            **base,
            plan_version=1,
            distributed_at=_AT,
            recipients=[Recipient(role="central_person"), Recipient(role="professional")],
            shared_with_organisations=["jeugdzorg-utrecht"],
            next_meeting_on=date(2026, 9, 29),
            agreement_ids=["a1", "a2"],
        ),
        PlanShared(
            **base,
            plan_version=1,
            shared_at=_AT,
            organisations=[
                SharedWith(
                    organisation="jeugdzorg-utrecht",
                    agreements=[AgreementRef(agreement_id="a2", on=date(2026, 5, 4))],
                )
            ],
            next_meeting_on=date(2026, 9, 29),
        ),
        PlanSharingWithdrawn(**base, organisation="jeugdzorg-utrecht", withdrawn_at=_AT),
        FollowUpDue(**base, timer_id="coordinator_call", kind="coordinator_call", due_at=_AT),
        OutcomeRecorded(
            **base,
            reached=True,
            agreements={"a1": AgreementOutcome.KEPT, "a2": AgreementOutcome.PARTLY_KEPT},
            recorded_at=_AT,
            timer_id="coordinator_call",
            kind="coordinator_call",
        ),
        RatingsRecorded(
            **base,
            timer_id="research_contact",
            kind="research_contact",
            ratings=[Rating(by=RatingGroup.FAMILY_NETWORK, meeting=8, plan=9)],
            recorded_at=_AT,
        ),
        PlanRevisionRequested(**base, timer_id="next_meeting", requested_at=_AT),
        FollowUpConferenceRequested(
            **base, new_case_id=UUID("7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a"), requested_at=_AT
        ),
        CaseErased(**base, reason="requested_by_person", erased_at=_AT),
        PartnerRegistered(
            organisation="jeugdzorg-utrecht",
            organisation_name="Jeugdzorg Utrecht",
            registered_at=_AT,
        ),
        PartnerRevoked(organisation="jeugdzorg-utrecht", revoked_at=_AT),
    ]
    return {type(event): event for event in events}


EXAMPLES = _examples()
assert set(EXAMPLES) == set(EVENT_CLASSES), "every integration event has its example"

_COPY = "https://kring.example.org/plans/cases/0b6c3f1e-8d2a-4c5b-9e7f-1a2b3c4d5e6f/plan/copy"
PARTNER_EXAMPLES: dict[type[PartnerEvent], PartnerEvent] = {
    PartnerPlanShared: PartnerPlanShared(
        case_id=_CASE,
        plan_version=1,
        shared_at=_AT,
        agreements=[AgreementRef(agreement_id="a2", on=date(2026, 5, 4))],
        next_meeting_on=date(2026, 9, 29),
        copy_links=CopyLinks.model_validate(
            {"json": f"{_COPY}?version=1", "pdf": f"{_COPY}.pdf?version=1", "html": f"{_COPY}.html"}
        ),
    ),
    PartnerPlanRevoked: PartnerPlanRevoked(
        case_id=_CASE, reason=RevocationReason.CASE_ERASED, revoked_at=_AT
    ),
}


def _key(name: str) -> str:
    """An id for a channel, message or operation: ``plan-shared`` -> ``planShared``."""
    head, *rest = name.replace(".", "-").split("-")
    return head + "".join(part.title() for part in rest)


class _Schemas:
    """Every schema in ``components.schemas``, pydantic's ``$defs`` lifted there."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def model(self, model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template=REF, by_alias=True)
        for name, definition in schema.pop("$defs", {}).items():
            self.schemas.setdefault(name, definition)
        self.schemas[model.__name__] = schema
        return {"$ref": REF.format(model=model.__name__)}

    def add(self, name: str, schema: dict[str, Any]) -> dict[str, str]:
        self.schemas[name] = schema
        return {"$ref": REF.format(model=name)}


def _kring_envelope(schemas: _Schemas, event_class: type[IntegrationEvent]) -> dict[str, str]:
    origin = event_class.origin
    subject: dict[str, Any] = {"type": "string", "format": "uuid", "description": "the case id"}
    if event_class in (PartnerRegistered, PartnerRevoked):
        subject = {"const": str(PARTNER_REGISTRY_ID), "description": "the partner registry"}
    data = schemas.model(event_class)
    return schemas.add(
        f"{event_class.__name__}Envelope",
        {
            "type": "object",
            "description": "CloudEvents 1.0, structured JSON mode",
            "additionalProperties": False,
            "required": [
                "specversion",
                "id",
                "source",
                "type",
                "subject",
                "time",
                "datacontenttype",
                "dataschema",
                "kringorigin",
                "kringposition",
                "data",
            ],
            "properties": {
                "specversion": {"const": "1.0"},
                "id": {
                    "type": "string",
                    "pattern": f"^{origin}:[1-9][0-9]*(:.+)?$",
                    "description": "<origin>:<position>, also the Nats-Msg-Id; a copy published"
                    " again past a taken id has a suffix (:again-<seq>, :conflict-<seq>)",
                },
                "source": {"const": f"/kring/{origin}"},
                "type": {"const": event_class.type_name()},
                "subject": subject,
                "time": {"type": "string", "format": "date-time"},
                "datacontenttype": {"const": "application/json"},
                "dataschema": {"const": event_class.schema_uri()},
                "kringorigin": {"const": origin},
                "kringposition": {"type": "integer", "minimum": 1},
                "data": data,
            },
        },
    )


def _kring_headers(schemas: _Schemas) -> dict[str, str]:
    return schemas.add(
        "KringHeaders",
        {
            "type": "object",
            "description": "The NATS headers every relayed message carries",
            "required": ["Nats-Msg-Id", "Nats-Expected-Stream", ORIGIN_HEADER, POSITION_HEADER],
            "additionalProperties": False,
            "properties": {
                "Nats-Msg-Id": {
                    "type": "string",
                    "description": "the CloudEvents id: JetStream drops a second copy by it",
                },
                "Nats-Expected-Stream": {
                    "const": STREAM,
                    "description": "set by the client: the server refuses the publish unless the"
                    " subject is this stream's",
                },
                ORIGIN_HEADER: {"type": "string", "description": "the publishing service"},
                POSITION_HEADER: {
                    "type": "string",
                    "pattern": "^[1-9][0-9]{0,18}$",
                    "description": "its position in the publishing service's log",
                },
                CONFLICT_HEADER: {
                    "type": "string",
                    "pattern": "^[0-9]+$",
                    "description": "only on a copy published again because another message held"
                    " its id: that message's stream sequence",
                },
            },
        },
    )


def _kring_example(event: IntegrationEvent) -> dict[str, Any]:
    position = 42
    return {
        "name": "example",
        "headers": {**message_headers(event.origin, position), "Nats-Expected-Stream": STREAM},
        "payload": json.loads(encode(event, origin=event.origin, position=position, time=_AT)),
    }


def document(
    service: str,
    *,
    description: str,
    consumes: Iterable[type[IntegrationEvent]] = (),
    nats_url: str = "nats://127.0.0.1:4222",
    partners_source: str = DEFAULT_SOURCE,
) -> dict[str, Any]:
    """The AsyncAPI document of ``service``: what it publishes, what it consumes."""
    schemas = _Schemas()
    headers = _kring_headers(schemas)
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    consumed = [c for c in EVENT_CLASSES if c in set(consumes)]
    published = [c for c in EVENT_CLASSES if c.origin == service]
    for event_class in [*published, *(c for c in consumed if c not in published)]:
        key = _key(event_class.name)
        messages[key] = {
            "name": event_class.type_name(),
            "title": event_class.__name__,
            "summary": (event_class.__doc__ or "").strip().split("\n\n")[0],
            "contentType": "application/json",
            "headers": headers,
            "payload": _kring_envelope(schemas, event_class),
            "examples": [_kring_example(EXAMPLES[event_class])],
        }
        channels[key] = {
            "address": event_class.subject(),
            "title": event_class.type_name(),
            "description": f"Stream {STREAM}; published by {event_class.origin}'s outbox relay",
            "servers": [{"$ref": "#/servers/nats"}],
            "messages": {key: {"$ref": f"#/components/messages/{key}"}},
            "x-kring-stream": STREAM,
        }
        ref = {"$ref": f"#/channels/{key}"}
        message = [{"$ref": f"#/channels/{key}/messages/{key}"}]
        if event_class in published:
            operations[f"publish{key[0].upper()}{key[1:]}"] = {
                "action": "send",
                "channel": ref,
                "messages": message,
                "summary": f"{service} publishes it (at least once; consumers track by id)",
            }
        if event_class in consumed:
            consumer = durable_name(service, event_class.origin)
            operations[f"consume{key[0].upper()}{key[1:]}"] = {
                "action": "receive",
                "channel": ref,
                "messages": message,
                "summary": f"{service} applies it exactly once, through its durable consumer"
                f" {consumer} (filter kring.{event_class.origin}.>)",
                "bindings": {"nats": {"queue": consumer}},
            }
    servers: dict[str, Any] = {
        "nats": {
            # The host only: never a user or password a URL may carry.
            "host": nats_url.split(",")[0].removeprefix("nats://").rpartition("@")[2],
            "protocol": "nats",
            "description": "NATS JetStream; every client connects as its own identity",
        }
    }
    if service == PARTNERS_SERVICE:
        _partner_feed(schemas, channels, messages, operations, servers, partners_source)
    return {
        "asyncapi": VERSION,
        "info": {"title": f"Kring {service}", "version": "0.1.0", "description": description},
        "defaultContentType": "application/json",
        "servers": servers,
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas.schemas, "messages": messages},
    }


def _partner_envelope(schemas: _Schemas, event_class: type[PartnerEvent]) -> dict[str, str]:
    properties: dict[str, Any] = {
        "specversion": {"const": "1.0"},
        "id": {
            "type": "string",
            "format": "uuid",
            "description": "the same on every redelivery and webhook retry: de-duplicate by it",
        },
        "source": {
            "type": "string",
            "description": "KRING_PARTNERS_SOURCE: /kring/partners, or the NL GOV profile's"
            " urn:nld:oin:<OIN>:systeem:<system>",
        },
        "type": {"const": event_class.type_name()},
        "subject": {"type": "string", "format": "uuid", "description": "the case id"},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"const": "application/json"},
        "dataschema": {"const": event_class.schema_uri()},
        "sequence": {
            "type": "string",
            "pattern": f"^[0-9]{{{SEQUENCE_DIGITS}}}$",
            "description": "increasing: orders a case's events",
        },
        "data": schemas.model(event_class),
    }
    required = [k for k in properties]
    if event_class is PartnerPlanShared:
        properties["dataref"] = {
            "type": "string",
            "format": "uri",
            "description": "where the partner fetches its JSON copy (a claim check)",
        }
        required.append("dataref")
    return schemas.add(
        f"{event_class.__name__}Envelope",
        {
            "type": "object",
            "description": "CloudEvents 1.0, structured JSON mode",
            "additionalProperties": False,
            "required": required,
            "properties": properties,
        },
    )


def _partner_feed(
    schemas: _Schemas,
    channels: dict[str, Any],
    messages: dict[str, Any],
    operations: dict[str, Any],
    servers: dict[str, Any],
    source: str,
) -> None:
    nats_headers = schemas.add(
        "PartnerFeedHeaders",
        {
            "type": "object",
            "required": ["Nats-Msg-Id", "Nats-Expected-Stream"],
            "additionalProperties": False,
            "properties": {
                "Nats-Msg-Id": {"type": "string", "format": "uuid"},
                "Nats-Expected-Stream": {
                    "type": "string",
                    "pattern": f"^{PARTNER_STREAM_PREFIX}",
                    "description": "the partner's own stream",
                },
            },
        },
    )
    webhook_headers = schemas.add(
        "StandardWebhooksHeaders",
        {
            "type": "object",
            "required": ["webhook-id", "webhook-timestamp", "webhook-signature", "content-type"],
            "properties": {
                "webhook-id": {"type": "string", "description": "the event's id, every retry"},
                "webhook-timestamp": {
                    "type": "string",
                    "pattern": "^[0-9]+$",
                    "description": "this attempt's time, Unix seconds",
                },
                "webhook-signature": {
                    "type": "string",
                    "pattern": "^v1,[A-Za-z0-9+/=]+( v1,[A-Za-z0-9+/=]+)*$",
                    "description": "HMAC-SHA256 of <id>.<timestamp>.<body> with each secret that"
                    " signs now (two, space-separated, after a rotation)",
                },
                "content-type": {"const": CLOUDEVENTS_JSON},
            },
        },
    )
    servers["partnerWebhook"] = {
        "host": "{endpoint}",
        "protocol": "https",
        "description": "a partner's own endpoint, registered with it (public addresses only)",
        "variables": {"endpoint": {"description": "the host of the partner's webhook URL"}},
    }
    parameters = {
        "organisation": {
            "description": f"the partner's organisation id ({ORGANISATION_ID.pattern})",
            "examples": ["jeugdzorg-utrecht"],
        }
    }
    webhook_messages: dict[str, Any] = {}
    for event_class in PARTNER_EVENT_CLASSES:
        key = _key(f"partner-{event_class.name}")
        envelope = _partner_envelope(schemas, event_class)
        example = json.loads(
            encode_partner_event(
                PARTNER_EXAMPLES[event_class],
                event_id=UUID("1830270b-0b67-5648-ad8a-a430e03b1e9d"),
                source=source,
                time=_AT,
                position=42,
            )
        )
        summary = (event_class.__doc__ or "").strip()
        messages[key] = {
            "name": event_class.type_name(),
            "title": event_class.__name__,
            "summary": summary,
            "contentType": "application/json",
            "headers": nats_headers,
            "payload": envelope,
            "examples": [
                {
                    "name": "example",
                    "headers": {
                        "Nats-Msg-Id": example["id"],
                        "Nats-Expected-Stream": f"{PARTNER_STREAM_PREFIX}jeugdzorg-utrecht",
                    },
                    "payload": example,
                }
            ],
        }
        messages[f"{key}Webhook"] = {
            "name": event_class.type_name(),
            "title": f"{event_class.__name__} (webhook)",
            "summary": summary,
            "contentType": CLOUDEVENTS_JSON,
            "headers": webhook_headers,
            "payload": envelope,
            "examples": [
                {
                    "name": "example",
                    "headers": {
                        "webhook-id": example["id"],
                        "webhook-timestamp": str(int(_AT.timestamp())),
                        "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
                        "content-type": CLOUDEVENTS_JSON,
                    },
                    "payload": example,
                }
            ],
        }
        webhook_messages[key] = {"$ref": f"#/components/messages/{key}Webhook"}
        channels[key] = {
            "address": f"{PARTNER_PREFIX}.{{organisation}}.{event_class.name}",
            "title": event_class.type_name(),
            "description": f"Stream {PARTNER_STREAM_PREFIX}{{organisation}}: each partner's own,"
            f" read through its durable pull consumer {PARTNER_CONSUMER!r} (the partner makes"
            " none) or by direct gets; no partner reads another's",
            "parameters": parameters,
            "servers": [{"$ref": "#/servers/nats"}],
            "messages": {key: {"$ref": f"#/components/messages/{key}"}},
            "x-kring-stream": f"{PARTNER_STREAM_PREFIX}{{organisation}}",
        }
        operations[f"feed{key[0].upper()}{key[1:]}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}"},
            "messages": [{"$ref": f"#/channels/{key}/messages/{key}"}],
            "summary": "to every organisation the family consented to share with (at least"
            " once, in order per case)",
        }
    channels["partnerWebhook"] = {
        "address": None,
        "title": "a partner's webhook",
        "description": "POST to the partner's registered URL (Standard Webhooks): retried with"
        " back-off for up to three days; 410 disables the endpoint, 429 and 5xx slow down",
        "servers": [{"$ref": "#/servers/partnerWebhook"}],
        "messages": webhook_messages,
    }
    operations["webhookToPartner"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/partnerWebhook"},
        "messages": [
            {"$ref": f"#/channels/partnerWebhook/messages/{name}"} for name in webhook_messages
        ],
        "summary": "the same events, for partners without NATS",
    }


def render(document_: Mapping[str, Any]) -> str:
    return json.dumps(document_, indent=2, sort_keys=False)
