"""Tracked consumers on a real JetStream: redeliveries and re-publications change nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.coordination.bootstrap import build
from services.coordination.settings import CoordinationSettings
from shared.consumer import durable_name
from shared.subjects import DLQ_STREAM, STREAM
from tests.factories import bus_headers, envelope, headers, request_received, request_withdrawn
from tests.harness import Running, envelopes, eventually, running, stream_messages
from tests.servers import NatsServer

CONSUMER = durable_name("coordination", "intake")


async def publish(nats: NatsServer, payload: bytes, msg_id: str, subject: str) -> int:
    """Publish as the subject's origin, with the headers a relay sets (none on poison)."""
    origin = subject.split(".")[1]
    try:
        headers = bus_headers(origin, json.loads(payload)["kringposition"], msg_id)
    except ValueError:
        headers = {"Nats-Msg-Id": msg_id}
    connection = await nats.connect(origin)
    try:
        ack = await connection.jetstream().publish(subject, payload, headers=headers)
        return int(ack.seq)
    finally:
        await connection.close()


async def acked_up_to(coordination: Running, stream_sequence: int) -> bool:
    info = await coordination.service.bus.js.consumer_info(STREAM, CONSUMER)
    return info.ack_floor.stream_seq >= stream_sequence and info.num_ack_pending == 0


@pytest.fixture
async def coordination(own_nats: NatsServer, tmp_path: Path) -> AsyncIterator[Running]:
    """Coordination, connected, with one coordinator for Utrecht in its pool."""
    settings = CoordinationSettings(**own_nats.settings("coordination"), data_dir=tmp_path)
    async with running(build(settings)) as service:
        await service.service.bus.wait_started()
        response = await service.http.post(
            "/coordinators",
            json={"coordinator_id": "c1", "regions": ["Utrecht"], "languages": ["nl"]},
            headers=headers(),
        )
        assert response.status_code == 201, response.text
        yield service


async def test_an_event_republished_under_a_new_sequence_changes_state_once(
    coordination: Running, own_nats: NatsServer
) -> None:
    event = request_received()
    payload = envelope(event, position=1)
    first = await publish(own_nats, payload, "intake:1", event.subject())
    # Same origin and position, different Msg-Id: JetStream stores it again (as after an
    # outage longer than the duplicate window); only tracking can tell.
    second = await publish(own_nats, payload, "intake:1-again", event.subject())
    assert second > first  # stored again (coordination's own event may come between)
    await eventually(lambda: acked_up_to(coordination, second), what="both acked")
    history = (await coordination.http.get(f"/cases/{event.case_id}/history")).json()
    assert [e["type"] for e in history] == ["Received", "CoordinatorAssigned"]
    pool = (await coordination.http.get("/coordinators")).json()["items"]
    assert pool[0]["open_cases"] == 1


async def test_a_failed_attempt_is_redelivered_and_applied_once(
    coordination: Running, own_nats: NatsServer
) -> None:
    app: Any = coordination.app
    original = app.on_request_received
    attempts: list[int] = []

    def flaky(*args: Any) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("store briefly unavailable")
        original(*args)

    app.on_request_received = flaky
    event = request_received()
    sequence = await publish(own_nats, envelope(event, 1), "intake:1", event.subject())
    await eventually(lambda: acked_up_to(coordination, sequence), what="acked after retry")
    assert len(attempts) == 2
    history = (await coordination.http.get(f"/cases/{event.case_id}/history")).json()
    assert [e["type"] for e in history] == ["Received", "CoordinatorAssigned"]


async def test_a_message_applied_as_the_term_runs_out_is_not_acked_and_the_next_term_acks_it(
    own_nats: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store committed, then the term ran out (a pause, say) before the ack: the ack is a
    side effect like any other, so it waits for the next term, which finds it applied."""
    from shared import lease

    held = {"now": True}
    monkeypatch.setattr(lease._SoleTerm, "valid", lambda self: held["now"])
    settings = CoordinationSettings(
        **own_nats.settings("coordination"), data_dir=tmp_path, consumer_ack_wait_seconds=1.0
    )
    async with running(build(settings)) as service:
        await service.service.bus.wait_started()
        app: Any = service.app
        original = app.on_request_received
        applied: list[int] = []

        def then_paused(*args: Any) -> None:
            original(*args)
            applied.append(1)
            held["now"] = False

        app.on_request_received = then_paused
        event = request_received()
        sequence = await publish(own_nats, envelope(event, 1), "intake:1", event.subject())

        async def done() -> bool:
            return bool(applied)

        await eventually(done, what="applied")
        info = await service.service.bus.js.consumer_info(STREAM, CONSUMER)
        assert info.ack_floor.stream_seq < sequence  # not acked by the term that ran out
        held["now"] = True  # the next term
        await eventually(lambda: acked_up_to(service, sequence), what="acked by the next term")
        assert len(applied) == 1  # found applied, not applied again
        history = (await service.http.get(f"/cases/{event.case_id}/history")).json()
        assert [e["type"] for e in history] == ["Received", "WaitingForCoordinator"]


async def test_a_malformed_message_is_dead_lettered_and_the_consumer_moves_on(
    coordination: Running, own_nats: NatsServer
) -> None:
    await publish(own_nats, b"{not json", "poison-1", "kring.intake.request-received")
    event = request_received(case_id=uuid.uuid4())
    good = await publish(own_nats, envelope(event, 2), "intake:2", event.subject())
    await eventually(lambda: acked_up_to(coordination, good), what="both handled")
    assert (await coordination.http.get(f"/cases/{event.case_id}")).status_code == 200
    operator = await own_nats.connect("operator")  # coordination may not read dead letters
    parked = await operator.jetstream().get_last_msg(DLQ_STREAM, f"kring-dlq.{CONSUMER}")
    await operator.close()
    assert parked.data == b"{not json"
    assert parked.headers["Kring-DLQ-Reason"] == "malformed-json"


async def test_a_message_failing_every_try_is_parked_and_an_operator_can_replay_it(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    from kring.dlq import dead_letters, replay_with

    settings = CoordinationSettings(
        **own_nats.settings("coordination"), data_dir=tmp_path, consumer_max_deliver=2
    )
    async with running(build(settings)) as service:
        await service.service.bus.wait_started()
        app: Any = service.app
        original = app.on_request_received

        def broken(*args: Any) -> None:
            raise RuntimeError("a bug")

        app.on_request_received = broken
        event = request_received()
        sequence = await publish(own_nats, envelope(event, 1), "intake:1", event.subject())
        await eventually(lambda: acked_up_to(service, sequence), what="parked after two tries")
        operator = await own_nats.connect("operator")
        letters = await dead_letters(operator)
        assert [(d.reason, d.origin, d.position) for d in letters] == [
            ("processing-failed:RuntimeError", "intake", "1")
        ]
        assert (await service.http.get(f"/cases/{event.case_id}")).status_code == 404

        app.on_request_received = original  # the bug is fixed
        replayed = await replay_with(operator, [letters[0].sequence])
        assert [(r.sequence, r.outcome) for r in replayed] == [(letters[0].sequence, "applied")]
        await eventually(lambda: _known(service, event.case_id), what="applied after the replay")
        assert await dead_letters(operator) == []
        await operator.close()


async def _known(service: Running, case_id: Any) -> bool:
    return (await service.http.get(f"/cases/{case_id}")).status_code == 200


async def test_a_withdrawal_after_acceptance_stops_the_case_and_the_stop_is_published(
    coordination: Running, own_nats: NatsServer
) -> None:
    event = request_received()
    await publish(own_nats, envelope(event, 1), "intake:1", event.subject())
    withdrawn = request_withdrawn(event.case_id)
    sequence = await publish(own_nats, envelope(withdrawn, 2), "intake:2", withdrawn.subject())
    await eventually(lambda: acked_up_to(coordination, sequence), what="both applied")
    case = (await coordination.http.get(f"/cases/{event.case_id}")).json()
    assert (case["stage"], case["stop_reason"]) == ("stopped", "request_withdrawn")
    pool = (await coordination.http.get("/coordinators")).json()["items"]
    assert pool[0]["open_cases"] == 0

    async def stop_published() -> bool:
        messages = envelopes(await stream_messages(own_nats, "kring.coordination.>"))
        return any(
            m["type"] == "nl.kring.case-ended-without-conference.v1"
            and m["data"]["reason"] == "request_withdrawn"
            for m in messages
        )

    await eventually(stop_published, what="CaseEndedWithoutConference on the stream")
