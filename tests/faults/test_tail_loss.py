"""The stream loses its tail, or all of it: the relays publish it again from their stores, the
consumers receive the copies under new stream sequences, and nothing is applied twice.

Intake, coordination and plans run in this process against a real nats-server: three relays and
three durable consumers (coordination and plans follow intake, plans follows coordination).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import REGISTRY

from services.coordination.bootstrap import build as build_coordination
from services.coordination.settings import CoordinationSettings
from services.intake.bootstrap import build as build_intake
from services.intake.settings import IntakeSettings
from services.plans.bootstrap import build as build_plans
from services.plans.settings import PlansSettings
from shared.bus import ensure_streams
from shared.consumer import durable_name
from shared.subjects import STREAM
from tests.factories import CLARIFICATION, REQUEST_BODY, headers
from tests.harness import Running, envelopes, eventually, running, stream_messages
from tests.servers import NatsServer

#: (follower, origin) of every consumer here.
CONSUMERS = [("coordination", "intake"), ("plans", "intake"), ("plans", "coordination")]
FOLLOWERS = {"intake": ["coordination", "plans"], "coordination": ["plans"]}
CASES = 3


def definitions(nats: NatsServer, data_dir: Path) -> dict[str, Callable[[], Any]]:
    return {
        "intake": lambda: build_intake(
            IntakeSettings(**nats.settings("intake"), data_dir=data_dir)
        ),
        "coordination": lambda: build_coordination(
            CoordinationSettings(**nats.settings("coordination"), data_dir=data_dir)
        ),
        "plans": lambda: build_plans(PlansSettings(**nats.settings("plans"), data_dir=data_dir)),
    }


async def as_admin(nats: NatsServer, stack: AsyncExitStack) -> JetStreamContext:
    """JetStream as admin, the only one that may delete messages, streams and read every
    consumer's state; closed with ``stack``."""
    connection = await nats.connect("admin")
    stack.push_async_callback(connection.close)
    return connection.jetstream()


@asynccontextmanager
async def started(build: Callable[[], Any]) -> AsyncIterator[Running]:
    async with running(build()) as service:
        await service.service.bus.wait_started()
        yield service


def duplicates_seen() -> float:
    """What the consumers here found already applied (the process-wide counter)."""
    return sum(
        REGISTRY.get_sample_value(
            "kring_consumed_total",
            {"consumer": durable_name(service, origin), "outcome": "duplicate"},
        )
        or 0.0
        for service, origin in CONSUMERS
    )


async def submit_and_accept(intake: Running) -> str:
    created = await intake.http.post(
        "/cases", json=REQUEST_BODY, headers=headers("ria", "requester")
    )
    case_id: str = created.json()["case_id"]
    for path, body in (("clarify", CLARIFICATION), ("accept", None)):
        response = await intake.http.post(f"/cases/{case_id}/{path}", json=body, headers=headers())
        assert response.status_code == 200, response.text
    return case_id


async def all_applied(js: JetStreamContext) -> bool:
    """Every consumer has acknowledged everything on the stream of the origin it follows."""
    for service, origin in CONSUMERS:
        try:
            info = await js.consumer_info(STREAM, durable_name(service, origin))
        except NotFoundError:
            return False
        if info.num_pending or info.num_ack_pending:
            return False
    return True


async def ids_on_stream(nats: NatsServer) -> list[str]:
    return [e["id"] for e in envelopes(await stream_messages(nats))]


async def histories(services: dict[str, Running], case_ids: list[str]) -> dict[str, Any]:
    """Every stored event of every case in coordination and plans, and the pool."""
    found: dict[str, Any] = {}
    for name in ("coordination", "plans"):
        for case_id in case_ids:
            response = await services[name].http.get(f"/cases/{case_id}/history")
            assert response.status_code == 200, response.text
            found[f"{name} {case_id}"] = [(e["type"], e["version"]) for e in response.json()]
    pool = await services["coordination"].http.get("/coordinators")
    found["pool"] = [(c["coordinator_id"], c["open_cases"]) for c in pool.json()["items"]]
    return found


async def remove_tail(js: JetStreamContext, count: int) -> list[str]:
    """Delete the stream's last ``count`` messages; return their ``origin:position``."""
    info = await js.stream_info(STREAM)
    removed = []
    for sequence in range(info.state.last_seq, info.state.last_seq - count, -1):
        message = await js.get_msg(STREAM, seq=sequence)
        await js.delete_msg(STREAM, sequence)
        removed.append(json.loads(message.data)["id"])
    return removed


async def remove_tail_reaching(js: JetStreamContext, origins: set[str]) -> list[str]:
    """Delete the stream's last messages, back to the last one of each of ``origins``: which
    service published last depends on timing, so the tail is as long as it takes."""
    info = await js.stream_info(STREAM)
    removed: list[str] = []
    sequence = info.state.last_seq
    while {r.split(":")[0] for r in removed} != origins:
        assert sequence > 0 and len(removed) < 50, f"no message of {origins} near the tail"
        message = await js.get_msg(STREAM, seq=sequence)
        await js.delete_msg(STREAM, sequence)
        removed.append(json.loads(message.data)["id"])
        sequence -= 1
    return removed


async def republished_and_found_applied(
    nats: NatsServer,
    js: JetStreamContext,
    everything: list[str],
    republished: list[str],
    duplicates_before: float,
) -> None:
    """The stream holds ``everything`` again, all of it delivered, and each consumer of a
    re-published message's origin found it applied already (counted, not applied twice)."""

    async def complete_and_delivered() -> bool:
        return sorted(await ids_on_stream(nats)) == sorted(everything) and (await all_applied(js))

    await eventually(complete_and_delivered, what="everything published again and delivered")
    expected = sum(len(FOLLOWERS[i.split(":")[0]]) for i in republished)
    await eventually(
        lambda: _is(duplicates_seen, duplicates_before + expected), what="each copy found applied"
    )


async def with_flowing_cases(
    own_nats: NatsServer, stack: AsyncExitStack, data_dir: Path
) -> tuple[dict[str, Running], list[str], JetStreamContext]:
    """Start the three services, give coordination a coordinator, and run the cases until
    every consumer has applied everything."""
    builds = definitions(own_nats, data_dir)
    services = {name: await stack.enter_async_context(started(b)) for name, b in builds.items()}
    response = await services["coordination"].http.post(
        "/coordinators",
        json={"coordinator_id": "c1", "regions": ["Utrecht"], "languages": ["nl"]},
        headers=headers(),
    )
    assert response.status_code == 201, response.text
    case_ids = [await submit_and_accept(services["intake"]) for _ in range(CASES)]
    js = await as_admin(own_nats, stack)

    def clarified() -> bool:
        # Plans asks intake for each case's questions (a claim check, off the stream).
        plans = services["plans"].app
        return all(plans.get(uuid.UUID(c)).clarification_known for c in case_ids)

    async def settled() -> bool:
        ids = await ids_on_stream(own_nats)
        # Per case: RequestSubmitted and RequestReceived from intake, CoordinatorAssigned from
        # coordination.
        return len(ids) == 3 * CASES and await all_applied(js) and clarified()

    await eventually(settled, what="every case assigned and applied by every consumer")
    return services, case_ids, js


async def test_a_lost_tail_is_published_again_and_no_consumer_applies_it_twice(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        services, case_ids, js = await with_flowing_cases(own_nats, stack, tmp_path)
        before = await histories(services, case_ids)
        everything = await ids_on_stream(own_nats)
        duplicates = duplicates_seen()

        removed = await remove_tail_reaching(js, {"intake", "coordination"})
        # What a reconnect does after a crash in which the server lost them.
        for name in ("intake", "coordination"):
            services[name].service.relay.rewind()

        # Every copy reached every consumer of its origin, which had applied it already.
        await republished_and_found_applied(own_nats, js, everything, removed, duplicates)
        assert await histories(services, case_ids) == before


async def test_a_recreated_stream_is_published_again_and_no_consumer_applies_anything_twice(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        services, case_ids, js = await with_flowing_cases(own_nats, stack, tmp_path)
        before = await histories(services, case_ids)
        everything = await ids_on_stream(own_nats)
        await js.delete_stream(STREAM)
        await ensure_streams(js)
    # The durable consumers went with the stream; the services, started again, make them anew
    # and read the new stream from its start while the relays publish it again.
    duplicates = duplicates_seen()
    async with AsyncExitStack() as stack:
        builds = definitions(own_nats, tmp_path)
        services = {name: await stack.enter_async_context(started(b)) for name, b in builds.items()}
        js = await as_admin(own_nats, stack)

        await republished_and_found_applied(own_nats, js, everything, everything, duplicates)
        assert await histories(services, case_ids) == before


async def lose_the_tail_under_a_newer_publish(nats: NatsServer, intake: Running) -> str:
    """Two cases relayed (each its submission and its acceptance), the last message lost from
    the stream, a third case relayed after the loss (so the stream's last message is newer than
    the lost one): the lost message's id."""
    await submit_and_accept(intake)
    await submit_and_accept(intake)
    await eventually(lambda: _count(nats, 4), what="two relayed")
    async with AsyncExitStack() as stack:
        [lost] = await remove_tail(await as_admin(nats, stack), 1)
    await submit_and_accept(intake)  # lands after the loss, before any rewind
    await eventually(lambda: _count(nats, 5), what="the newer one relayed")
    return lost


async def published_again_once(nats: NatsServer, lost: str) -> None:
    await eventually(lambda: _contains(nats, lost), what=f"{lost} published again")
    ids = await ids_on_stream(nats)
    assert len(ids) == len(set(ids)) == 6


async def test_a_tail_lost_while_a_newer_publish_lands_first_is_still_published_again(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    """After a crash that lost the stream's tail, a publish buffered during the outage may reach
    the restarted server before the relay hears of the reconnect: the stream's last message is
    then newer than what was lost, and the lost events must be published all the same."""
    settings = IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path)
    async with started(lambda: build_intake(settings)) as intake:
        lost = await lose_the_tail_under_a_newer_publish(own_nats, intake)
        intake.service.relay.rewind()
        await published_again_once(own_nats, lost)


async def test_a_service_restarted_before_it_rewound_still_publishes_the_lost_tail(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    """The same, with the service killed before its relay heard of the reconnect: a relay that
    starts goes back over what its store holds from the last minute."""
    settings = IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path)
    async with started(lambda: build_intake(settings)) as intake:
        lost = await lose_the_tail_under_a_newer_publish(own_nats, intake)
    async with started(lambda: build_intake(settings)):
        await published_again_once(own_nats, lost)


async def test_a_rewind_while_a_batch_is_in_flight_is_not_forgotten(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    """A reconnect can come while the relay waits for the acks of a batch (nats-py sends what
    it buffered during the outage first, and then says it reconnected): the rewind it asks for
    must still happen once the batch is done."""
    settings = IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path)
    async with started(lambda: build_intake(settings)) as intake:
        relay = intake.service.relay
        await submit_and_accept(intake)
        await eventually(lambda: _count(own_nats, 2), what="one relayed")  # submitted, accepted
        async with AsyncExitStack() as stack:
            lost = await remove_tail(await as_admin(own_nats, stack), 1)

        release = asyncio.Event()
        in_flight = asyncio.Event()
        publish = relay._publish

        async def held(item: Any) -> BaseException | None:
            in_flight.set()
            await release.wait()
            return await publish(item)

        relay._publish = held  # type: ignore[method-assign]
        await submit_and_accept(intake)
        await asyncio.wait_for(in_flight.wait(), 10)
        relay.rewind()  # the reconnect, while the batch waits
        release.set()
        await eventually(lambda: _contains(own_nats, lost[0]), what=f"{lost[0]} published again")
        ids = await ids_on_stream(own_nats)
        assert len(ids) == len(set(ids)) == 4  # two cases, each submitted and accepted


async def _is(value: Callable[[], float], expected: float) -> bool:
    return value() == expected


async def _count(nats: NatsServer, expected: int) -> bool:
    return len(await stream_messages(nats)) == expected


async def _contains(nats: NatsServer, message_id: str) -> bool:
    return message_id in await ids_on_stream(nats)
