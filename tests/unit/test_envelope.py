import json
import uuid
from typing import Any

import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from shared.envelope import MAX_MESSAGE_BYTES, PoisonMessageError, decode, encode
from shared.events import EVENT_CLASSES, RequestReceived
from tests.factories import NOW, envelope, plan_distributed, request_received


def test_an_encoded_event_is_a_cloudevent_any_sdk_parses() -> None:
    event = plan_distributed(uuid.uuid4())
    parsed = JSONFormat().read(CloudEvent, envelope(event, 7))
    assert parsed.get_type() == "nl.kring.plan-distributed.v1"
    assert parsed.get_id() == "plans:7"
    assert parsed.get_source() == "/kring/plans"
    assert parsed.get_subject() == str(event.case_id)
    assert parsed.get_extension("kringposition") == 7
    assert parsed.get_data()["plan_version"] == 1


def test_decode_gives_back_the_event_origin_and_position() -> None:
    event = request_received()
    delivered = decode(encode(event, origin="intake", position=3, time=NOW))
    assert delivered.event == event
    assert (delivered.origin, delivered.position, delivered.event_id) == ("intake", 3, "intake:3")


def test_every_event_type_names_its_version_and_subject() -> None:
    for event_class in EVENT_CLASSES:
        assert event_class.type_name().startswith("nl.kring.")
        assert event_class.type_name().endswith(f".v{event_class.version}")
        assert event_class.subject() == f"kring.{event_class.origin}.{event_class.name}"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed-json"),
        (json.dumps({"specversion": "1.0"}).encode(), "invalid-envelope"),
        (b"x" * (MAX_MESSAGE_BYTES + 1), "oversized"),
    ],
)
def test_unparseable_messages_are_poison_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(PoisonMessageError) as caught:
        decode(raw)
    assert caught.value.reason == reason


def test_an_unknown_type_is_poison() -> None:
    body = json.loads(envelope(request_received(), 1))
    body["type"] = "nl.kring.something-else.v9"
    with pytest.raises(PoisonMessageError) as caught:
        decode(json.dumps(body).encode())
    assert caught.value.reason == "unknown-type"


def test_invalid_data_is_poison_and_the_reason_names_the_field_not_the_value() -> None:
    body = json.loads(envelope(request_received(), 1))
    body["data"]["region"] = {"secret": "Johan's address"}
    with pytest.raises(PoisonMessageError) as caught:
        decode(json.dumps(body).encode())
    assert caught.value.reason == "invalid-data"
    assert "region" in caught.value.detail
    assert "Johan" not in caught.value.detail


def test_integration_events_refuse_unknown_fields() -> None:
    with pytest.raises(ValueError, match="extra"):
        RequestReceived.model_validate(
            request_received().model_dump(mode="json") | {"name": "Johan"}
        )


@pytest.mark.parametrize("event_class", EVENT_CLASSES, ids=lambda c: c.name)
def test_every_event_type_decodes_to_itself(event_class: type) -> None:
    # Every type takes the one-pass path; each comes back equal to what was encoded.
    [event] = [e for e in _one_of_each() if type(e) is event_class]
    assert decode(encode(event, origin=event.origin, position=5, time=NOW)).event == event


def test_a_subject_that_is_not_the_case_id_is_poison() -> None:
    body = json.loads(envelope(request_received(), 1))
    body["subject"] = str(uuid.uuid4())
    with pytest.raises(PoisonMessageError) as caught:
        decode(json.dumps(body).encode())
    assert caught.value.reason == "invalid-data"


def _one_of_each() -> list[Any]:
    """One valid event of every type, from its own JSON schema's required fields."""
    case_id = uuid.uuid4()
    samples: dict[str, Any] = {
        "case_id": str(case_id),
        "model": "family",
        "region": "Utrecht",
        "submitted_at": NOW.isoformat(),
        "accepted_at": NOW.isoformat(),
        "withdrawn_at": NOW.isoformat(),
        "coordinator_ids": ["c1"],
        "assigned_at": NOW.isoformat(),
        "first_contact_due": NOW.isoformat(),
        "held_on": "2026-04-01",
        "parts": ["information"],
        "participant_id": "p1",
        "ending": "stopped",
        "ended_at": NOW.isoformat(),
        "plan_version": 1,
        "distributed_at": NOW.isoformat(),
        "timer_id": "research",
        "kind": "research",
        "due_at": NOW.isoformat(),
        "reached": True,
        "recorded_at": NOW.isoformat(),
        "new_case_id": str(uuid.uuid4()),
        "requested_at": NOW.isoformat(),
        "reason": "other",
        "erased_at": NOW.isoformat(),
        "requester_relation": "family",
        "informational_talk": False,
        "follow_up_of": None,
        "stage": "clarified",
        "contacted_at": NOW.isoformat(),
        "attended": {"family": 4, "child": 1},
        "ratings": [{"by": "family_network", "meeting": 8, "plan": 9}],
    }
    events = []
    for event_class in EVENT_CLASSES:
        required = event_class.model_json_schema().get("required", [])
        events.append(event_class.model_validate({k: samples[k] for k in required}))
    return events
