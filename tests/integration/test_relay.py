"""The outbox relay: every stored event reaches the stream exactly once, NATS up or down."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from nats.js import JetStreamContext

from services.intake.bootstrap import build
from services.intake.settings import IntakeSettings
from shared.bus import ensure_streams
from shared.events import RequestReceived
from tests.factories import CLARIFICATION, REQUEST_BODY, headers
from tests.harness import envelopes, eventually, running, stream_messages
from tests.servers import NatsServer

#: The accepted requests: one per case (each case's submission is published too).
ACCEPTED = RequestReceived.subject()


async def submit_and_accept(http: httpx.AsyncClient, count: int) -> list[str]:
    case_ids = []
    for _ in range(count):
        created = await http.post("/cases", json=REQUEST_BODY, headers=headers("ria", "requester"))
        assert created.status_code == 201, created.text
        case_id = created.json()["case_id"]
        clarified = await http.post(
            f"/cases/{case_id}/clarify", json=CLARIFICATION, headers=headers()
        )
        assert clarified.status_code == 200, clarified.text
        accepted = await http.post(f"/cases/{case_id}/accept", headers=headers())
        assert accepted.status_code == 200, accepted.text
        case_ids.append(case_id)
    return case_ids


async def relayed_positions(nats: NatsServer) -> list[int]:
    return [e["kringposition"] for e in envelopes(await stream_messages(nats, ACCEPTED))]


async def test_events_stored_while_nats_is_down_reach_the_stream_exactly_once(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    settings = IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path)
    async with running(build(settings)) as intake:
        await submit_and_accept(intake.http, 2)
        await eventually(lambda: _count_is(own_nats, 2), what="first two relayed")

        own_nats.stop()
        # The API keeps accepting and storing while NATS is away.
        offline_cases = await submit_and_accept(intake.http, 5)
        assert (await intake.http.get("/health/ready")).status_code == 503

        own_nats.start()
        await eventually(lambda: _count_is(own_nats, 7), what="all seven relayed")
        positions = await relayed_positions(own_nats)
        assert len(positions) == len(set(positions)) == 7
        subjects = {e["subject"] for e in envelopes(await stream_messages(own_nats))}
        assert set(offline_cases) <= subjects

    # A restart resumes from its checkpoint: nothing re-published, nothing skipped.
    async with running(build(settings)) as intake:
        await eventually(lambda: _relay_caught_up(intake), what="relay resumed")
        await submit_and_accept(intake.http, 1)
        await eventually(lambda: _count_is(own_nats, 8), what="the eighth relayed")
        positions = await relayed_positions(own_nats)
        assert Counter(positions).most_common(1)[0][1] == 1


async def _count_is(nats: NatsServer, expected: int) -> bool:
    return len(await stream_messages(nats, ACCEPTED)) == expected


async def _relay_caught_up(intake) -> bool:  # type: ignore[no-untyped-def]
    relay = intake.service.relay
    return (
        relay.position is not None and relay.position == intake.app.recorder.max_notification_id()
    )


async def test_a_service_started_before_nats_accepts_commands_and_relays_later(
    tmp_path: Path,
) -> None:
    nats_server = NatsServer(tmp_path / "nats")  # not started yet
    settings = IntakeSettings(**nats_server.settings("intake"), data_dir=tmp_path)
    try:
        async with running(build(settings)) as intake:
            await submit_and_accept(intake.http, 1)
            assert (await intake.http.get("/health/ready")).status_code == 503
            nats_server.start()
            await eventually(lambda: _count_is(nats_server, 1), what="relayed once up")
            await eventually(lambda: _ready(intake.http), what="ready after connecting")
    finally:
        nats_server.stop()


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/health/ready")).status_code == 200


async def _delete_and_recreate(js: JetStreamContext) -> None:
    await js.delete_stream("KRING")
    await ensure_streams(js)


async def _purge(js: JetStreamContext) -> None:
    # The messages go but the stream stays, and the server still remembers their ids
    # (duplicate window): a plain re-publish would be answered "duplicate" and dropped.
    await js.purge_stream("KRING")


@pytest.mark.parametrize("lose", [_delete_and_recreate, _purge], ids=["deleted", "purged"])
async def test_a_lost_stream_is_republished_from_the_store(
    own_nats: NatsServer,
    tmp_path: Path,
    lose: Callable[[JetStreamContext], Awaitable[None]],
) -> None:
    settings = IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path)
    async with running(build(settings)) as intake:
        await submit_and_accept(intake.http, 3)
        await eventually(lambda: _count_is(own_nats, 3), what="three relayed")
        admin = await own_nats.connect("admin")  # only admin may delete or purge a stream
        await lose(admin.jetstream())
        await admin.close()
        intake.service.relay.rewind()
        await eventually(lambda: _count_is(own_nats, 3), what="three re-published")
        assert sorted(await relayed_positions(own_nats)) == [3, 6, 9]
