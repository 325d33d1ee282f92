"""The analyst's replay on a real stream: stages, counts, stop reasons, and the filters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta

from kring.replay import Projection, ReplayFilter, replay_with
from shared.bus import ensure_streams
from shared.envelope import encode
from shared.events import IntegrationEvent
from shared.permissions import SERVICES
from tests.factories import (
    NOW,
    bus_headers,
    case_ended,
    conference_held,
    coordinator_assigned,
    plan_distributed,
    request_received,
)
from tests.servers import NatsServer

HOUR = timedelta(hours=1)


async def publish(nats: NatsServer, items: list[tuple[IntegrationEvent, int, datetime]]) -> None:
    """Publish as the relays do, each as its origin: ``Nats-Msg-Id`` = origin:position."""
    connections = {origin: await nats.connect(origin) for origin in SERVICES}
    try:
        await ensure_streams(connections["intake"].jetstream())
        for event, position, at in items:
            payload = encode(event, origin=event.origin, position=position, time=at)
            msg_id = f"{event.origin}:{position}:{uuid.uuid4().hex[:6]}"
            await (
                connections[event.origin]
                .jetstream()
                .publish(
                    event.subject(), payload, headers=bus_headers(event.origin, position, msg_id)
                )
            )
        await (
            connections["intake"].jetstream().publish("kring.intake.request-received", b"{not json")
        )
    finally:
        for connection in connections.values():
            await connection.close()


async def replay(nats: NatsServer, chosen: ReplayFilter | None = None) -> Projection:
    """The analyst's replay, as the analyst."""
    connection = await nats.connect("analyst")
    try:
        return await replay_with(connection, chosen or ReplayFilter())
    finally:
        await connection.close()


async def two_cases(nats: NatsServer) -> tuple[uuid.UUID, uuid.UUID]:
    """One case to a distributed plan (its request re-published once), one stopped."""
    done, stopped = uuid.uuid4(), uuid.uuid4()
    await publish(
        nats,
        [
            (request_received(done), 1, NOW),
            (request_received(stopped, model="group"), 2, NOW + HOUR),
            (coordinator_assigned(done), 1, NOW + 2 * HOUR),
            (request_received(done), 1, NOW),  # a re-published copy
            (conference_held(done), 2, NOW + 3 * HOUR),
            (case_ended(stopped, "stopped", "network_not_willing"), 3, NOW + 4 * HOUR),
            (plan_distributed(done, at=NOW + 5 * HOUR), 1, NOW + 5 * HOUR),
        ],
    )
    return done, stopped


async def test_the_stream_folds_into_stages_counts_and_stop_reasons(
    own_nats: NatsServer,
) -> None:
    done, stopped = await two_cases(own_nats)

    projection = await replay(own_nats)

    assert projection.read == 8
    assert projection.events == 6
    assert projection.duplicates == 1
    assert projection.undecodable == {"malformed-json": 1}
    assert projection.by_type == {
        "request-received": 2,
        "coordinator-assigned": 1,
        "conference-held": 1,
        "case-ended-without-conference": 1,
        "plan-distributed": 1,
    }
    assert projection.cases[done].stage == "plan-distributed"
    assert projection.cases[stopped].stage == "ended:stopped"
    assert projection.cases[stopped].model == "group"
    assert projection.stop_reasons == {"network_not_willing": 1}
    assert projection.cases[done].times["conference-held"] == NOW + 3 * HOUR
    assert projection.lead_times()["accepted_to_conference"]["median_s"] == 3 * 3600


async def test_a_window_a_case_and_types_narrow_the_replay(own_nats: NatsServer) -> None:
    done, _ = await two_cases(own_nats)

    window = await replay(own_nats, ReplayFilter.of(since=NOW + HOUR, until=NOW + 4 * HOUR))
    assert sorted(window.by_type.elements()) == [
        "conference-held",
        "coordinator-assigned",
        "request-received",
    ]

    one_case = await replay(own_nats, ReplayFilter.of(case_id=done))
    assert set(one_case.cases) == {done}
    assert one_case.events == 4

    some_types = await replay(
        own_nats, ReplayFilter.of(types=["plan-distributed", "nl.kring.conference-held.v1"])
    )
    assert some_types.by_type == {"plan-distributed": 1, "conference-held": 1}
    assert some_types.read == 2  # the server filtered by subject


async def test_kring_replay_prints_the_projection(own_nats: NatsServer) -> None:
    done, _ = await two_cases(own_nats)
    result = subprocess.run(
        [sys.executable, "-m", "kring.cli", "replay", "--case", str(done), "--json"],
        env=os.environ | own_nats.env("analyst"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["cases"] == 1
    assert summary["case_lines"][0]["stage"] == "plan-distributed"

    refused = subprocess.run(
        [sys.executable, "-m", "kring.cli", "replay", "--type", "no-such-event"],
        env=os.environ | own_nats.env("analyst"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "unknown event type" in refused.stderr
