"""What the relay does not take on trust, on a real nats-server: a "duplicate" answer for an id
another message holds (the alarm, and the real event still reaching its consumers), a last
message whose ``Kring-Position`` is not a position (issue 9: it stalled intake's relay on every
start), and its own failures (readiness 503 after ``relay_unhealthy_seconds``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import REGISTRY

from kring.dlq import replay_with
from services.coordination.bootstrap import build as build_coordination
from services.coordination.settings import CoordinationSettings
from services.intake.bootstrap import build as build_intake
from services.intake.settings import IntakeSettings
from shared.bus import ensure_streams
from shared.consumer import CONSUMER_HEADER, REASON_HEADER
from shared.envelope import CONFLICT_HEADER, POSITION_HEADER
from shared.permissions import durable_name
from shared.stream_read import read_all
from shared.subjects import DLQ_STREAM, DLQ_SUBJECTS
from tests.factories import (
    CLARIFICATION,
    REQUEST_BODY,
    bus_headers,
    coordinator_assigned,
    envelope,
    headers,
    request_received,
)
from tests.harness import Running, eventually, running, stream_messages
from tests.servers import NatsServer


def metric(name: str, origin: str = "intake") -> float:
    return REGISTRY.get_sample_value(name, {"origin": origin}) or 0.0


async def accepted_case(intake: Running) -> str:
    created = await intake.http.post("/cases", json=REQUEST_BODY, headers=headers())
    case_id: str = created.json()["case_id"]
    for path, body in (("clarify", CLARIFICATION), ("accept", None)):
        response = await intake.http.post(f"/cases/{case_id}/{path}", json=body, headers=headers())
        assert response.status_code == 200, response.text
    return case_id


@asynccontextmanager
async def intake_and_coordination(
    nats: NatsServer, data: Path
) -> AsyncIterator[tuple[Running, Running]]:
    intake_settings = IntakeSettings(**nats.settings("intake"), data_dir=data)
    coordination_settings = CoordinationSettings(**nats.settings("coordination"), data_dir=data)
    async with (
        running(build_intake(intake_settings)) as intake,
        running(build_coordination(coordination_settings)) as coordination,
    ):
        await intake.service.bus.wait_started()
        await coordination.service.bus.wait_started()
        added = await coordination.http.post(
            "/coordinators",
            json={"coordinator_id": "c1", "regions": ["Utrecht"], "languages": ["nl"]},
            headers=headers(),
        )
        assert added.status_code == 201, added.text
        yield intake, coordination


@asynccontextmanager
async def relay_held(intake: Running) -> AsyncIterator[asyncio.Event]:
    """Intake's relay publishes nothing until the event is set."""
    relay = intake.service.relay
    release = asyncio.Event()
    publish = relay._publish

    async def held(item: Any) -> BaseException | None:
        await release.wait()
        return await publish(item)

    relay._publish = held  # type: ignore[method-assign]
    try:
        yield release
    finally:
        release.set()
        relay._publish = publish  # type: ignore[method-assign]


async def status(service: Running, path: str) -> int:
    return (await service.http.get(path)).status_code


async def ready_reasons(service: Running) -> list[str]:
    answer = await service.http.get("/health/ready")
    reasons: list[str] = answer.json().get("reasons", [])
    return reasons


async def test_an_id_taken_by_another_identity_raises_the_alarm_and_the_event_still_arrives(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    """Permissions stop coordination publishing on intake's subjects, but JetStream
    de-duplicates by ``Nats-Msg-Id`` across the whole stream: coordination can take
    ``intake:<n>`` on a subject of its own. The relay finds that message under its id, says so,
    and publishes its event under another id, which coordination applies."""
    conflicts = metric("kring_relay_conflicts_total")
    async with intake_and_coordination(own_nats, tmp_path) as (intake, coordination):
        async with relay_held(intake) as release:
            case_id = await accepted_case(intake)
            position = intake.app.recorder.max_notification_id()  # RequestReceived's
            planted = coordinator_assigned(uuid.uuid4())
            connection = await own_nats.connect("coordination")
            ack = await connection.jetstream().publish(
                planted.subject(),
                envelope(planted, 999_999),
                headers=bus_headers("coordination", 999_999, msg_id=f"intake:{position}"),
            )
            await connection.close()
            release.set()

            async def assigned() -> bool:
                return await status(coordination, f"/cases/{case_id}") == 200

            await eventually(assigned, what="the real event applied by coordination")

        assert metric("kring_relay_conflicts_total") == conflicts + 1
        reasons = await ready_reasons(intake)
        assert await status(intake, "/health/ready") == 503
        assert any(f"intake:{position} (sequence {ack.seq})" in r for r in reasons), reasons
        copies = [
            m
            for m in await stream_messages(own_nats, "kring.intake.>")
            if case_id.encode() in m.data
            and m.headers["Nats-Msg-Id"].startswith(f"intake:{position}")
        ]
        assert [(c.headers["Nats-Msg-Id"], c.headers[CONFLICT_HEADER]) for c in copies] == [
            (f"intake:{position}:conflict-{ack.seq}", str(ack.seq))
        ]
        # Restarting is how an operator who has looked clears the alarm; the event is not
        # published a third time.
    async with running(
        build_intake(IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path))
    ) as again:
        await eventually(lambda: _ready(again.http), what="ready again after a restart")


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/health/ready")).status_code == 200


async def test_on_an_open_server_a_forgery_applied_first_parks_the_real_event_as_a_conflict(
    tmp_path: Path,
) -> None:
    """With the old open config anyone could publish a perfect forgery on intake's subject at
    intake's next position. Coordination applies it (it cannot tell); intake's relay finds it
    under its id: the alarm, and the real event goes out marked as a conflict, which
    coordination, having applied something at that position already, parks instead of
    dropping as a duplicate. Nothing vanishes without a trace."""
    server = NatsServer(tmp_path / "open", closed=False).start()
    try:
        async with intake_and_coordination(server, tmp_path) as (intake, coordination):
            async with relay_held(intake) as release:
                case_id = await accepted_case(intake)
                position = intake.app.recorder.max_notification_id()
                forged = request_received()
                anyone = await server.connect("analyst")  # on an open server: anyone
                await anyone.jetstream().publish(
                    forged.subject(),
                    envelope(forged, position),
                    headers=bus_headers("intake", position, msg_id=f"intake:{position}"),
                )

                async def forgery_applied() -> bool:
                    return await status(coordination, f"/cases/{forged.case_id}") == 200

                await eventually(forgery_applied, what="the forgery applied")
                release.set()

                async def parked() -> list[Any]:
                    return [
                        m
                        for m in await read_all(anyone, DLQ_STREAM, DLQ_SUBJECTS)
                        if m.headers.get(REASON_HEADER) == "conflicting-duplicate"
                    ]

                async def is_parked() -> bool:
                    return len(await parked()) == 1

                await eventually(is_parked, what="the real event parked as a conflict")
                [letter] = await parked()
                assert case_id.encode() in letter.data
                assert letter.headers[CONSUMER_HEADER] == durable_name("coordination", "intake")
                assert letter.headers[POSITION_HEADER] == str(position)
                # A replay does not make it go away as "already applied": it stays parked.
                [answer] = await replay_with(anyone, [letter.seq])
                assert answer.outcome == "conflict"
                assert [m.seq for m in await parked()] == [letter.seq]
                await anyone.close()
            assert await status(intake, "/health/ready") == 503
            assert await status(coordination, f"/cases/{case_id}") == 404
    finally:
        server.stop()


async def test_a_malformed_position_on_the_stream_is_passed_over_and_the_relay_goes_on(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    """Issue 9's probe: one message with ``Kring-Position: abc`` on intake's subjects (now only
    intake's own credentials could put it there) stalled intake's relay on every start."""
    connection = await own_nats.connect("intake")
    js = connection.jetstream()
    await ensure_streams(js)
    real = request_received()
    await js.publish(real.subject(), envelope(real, 2), headers=bus_headers("intake", 2))
    for _ in range(2):
        await js.publish("kring.intake.request-received", b"{}", headers={POSITION_HEADER: "abc"})
    await connection.close()
    passed_over = metric("kring_relay_unreadable_positions_total")

    settings = IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path)
    async with running(build_intake(settings)) as intake:
        await intake.service.bus.wait_started()
        assert await intake.service.relay.last_position_on_stream() == 2
        case_id = await accepted_case(intake)

        async def relayed() -> bool:
            return any(case_id.encode() in m.data for m in await stream_messages(own_nats))

        await eventually(relayed, what="the new case relayed")
        await eventually(lambda: _ready(intake.http), what="ready")
    assert metric("kring_relay_unreadable_positions_total") >= passed_over + 2


async def test_a_relay_that_keeps_failing_makes_readiness_503_until_it_recovers(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    settings = IntakeSettings(
        **own_nats.settings("intake"), data_dir=tmp_path, relay_unhealthy_seconds=0.5
    )
    async with running(build_intake(settings)) as intake:
        await eventually(lambda: _ready(intake.http), what="ready")
        relay = intake.service.relay
        translate = relay.translate

        def broken(event: Any) -> Any:
            raise RuntimeError("a bug in the translation")

        relay.translate = broken
        case_id = await accepted_case(intake)

        async def failing() -> bool:
            reasons = await ready_reasons(intake)
            return any("relay failing" in r and "RuntimeError" in r for r in reasons)

        await eventually(failing, what="readiness 503 naming the failing relay")
        assert await status(intake, "/health/ready") == 503
        relay.translate = translate

        async def relayed() -> bool:
            return any(case_id.encode() in m.data for m in await stream_messages(own_nats))

        await eventually(relayed, what="relayed once fixed")
        await eventually(lambda: _ready(intake.http), what="ready again")
