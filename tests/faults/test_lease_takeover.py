"""Two replicas of one service on one PostgreSQL store: only the lease holder relays, consumes
and fires timers; paused (SIGSTOP) past its lease it is taken over, and woken (SIGCONT) it does
no work at all until it has the lease again, which it takes when the other is killed.

Followup is the service: it consumes (PlanDistributed from plans, the coordinator from
coordination), fires timers (the schedule's contacts) and relays (FollowUpDue). A replica's work
is read from its own log (at DEBUG: ``consumer.handled``, ``relay.published``, ``followup.due``):
a paused process writes nothing, so everything its log holds past the offset it had when it was
woken was done after waking.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx

from shared.envelope import encode
from tests.factories import bus_headers, coordinator_assigned, plan_distributed
from tests.harness import eventually, staff_headers, stream_messages
from tests.servers import NatsServer, ServiceProcess, fresh_database

LEASE_SECONDS = 3.0
#: What a replica logs for each piece of leased work it does.
WORK = ("consumer.handled", "relay.published", "followup.due")
OPERATOR = staff_headers()


class Replica:
    def __init__(self, process: ServiceProcess) -> None:
        self.process = process
        assert process.log_path is not None
        self.log = process.log_path

    @property
    def pid(self) -> int:
        assert self.process.process is not None
        return self.process.process.pid

    async def metric(self, http: httpx.AsyncClient, name: str) -> float | None:
        try:
            text = (await http.get(f"{self.process.url}/metrics", headers=OPERATOR)).text
        except httpx.TransportError:
            return None
        values = [
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)
        ]
        return sum(values) if values else 0.0

    async def holds(self, http: httpx.AsyncClient) -> bool:
        return await self.metric(http, "kring_lease_held") == 1.0

    def lines(self, since: int = 0) -> list[dict[str, object]]:
        with self.log.open("rb") as handle:
            handle.seek(since)
            raw = handle.read()
        found = []
        for line in raw.decode(errors="replace").splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def offset(self) -> int:
        return self.log.stat().st_size

    def work(self, since: int = 0) -> list[str]:
        return [str(line["event"]) for line in self.lines(since) if line.get("event") in WORK]


async def publish_case(nats: NatsServer, case_id: uuid.UUID, position: int) -> None:
    """Coordination's CoordinatorAssigned and plans' PlanDistributed, as their relays would."""
    at = datetime.now(UTC)
    events = (
        ("coordination", coordinator_assigned(case_id)),
        ("plans", plan_distributed(case_id, at=at, agreement_ids=["a1"], next_meeting_on=None)),
    )
    for origin, event in events:
        connection = await nats.connect(origin)
        try:
            await connection.jetstream().publish(
                event.subject(),
                encode(event, origin=origin, position=position, time=at),
                headers=bus_headers(origin, position),
            )
        finally:
            await connection.close()


async def followed_up(http: httpx.AsyncClient, replicas: list[Replica], case_id: uuid.UUID) -> bool:
    """Every timer of the case fired, read through whichever replica answers."""
    for replica in replicas:
        try:
            answer = await http.get(f"{replica.process.url}/cases/{case_id}", headers=OPERATOR)
        except httpx.TransportError:
            continue
        if answer.status_code == 200:
            timers = answer.json()["timers"]
            return bool(timers) and all(t["fired_at"] is not None for t in timers)
    return False


async def test_a_paused_holder_is_taken_over_and_does_nothing_until_it_has_the_lease_again(
    own_nats: NatsServer, postgres: str, tmp_path: Path
) -> None:
    with fresh_database(postgres) as url:
        await _paused_and_taken_over(own_nats, url, tmp_path)


async def _paused_and_taken_over(own_nats: NatsServer, url: str, tmp_path: Path) -> None:
    env = {
        "KRING_STORE": "postgres",
        "KRING_POSTGRES_URL": url,
        "KRING_LEASE_SECONDS": str(LEASE_SECONDS),
        "KRING_CONSUMER_ACK_WAIT_SECONDS": "2",
        "KRING_FOLLOWUP_SECONDS_PER_DAY": "0.01",
        "KRING_TIMER_TICK_SECONDS": "0.2",
        "KRING_LOG_LEVEL": "DEBUG",
        "KRING_LOG_FORMAT": "json",
    }
    replicas = [
        Replica(
            ServiceProcess(
                "followup", own_nats, tmp_path / f"data-{n}", log_path=tmp_path / f"r{n}.log", **env
            )
        )
        for n in (1, 2)
    ]
    for replica in replicas:
        replica.process.start()
    cases: list[uuid.UUID] = []

    async def case(http: httpx.AsyncClient) -> uuid.UUID:
        cases.append(uuid.uuid4())
        await publish_case(own_nats, cases[-1], len(cases))
        return cases[-1]

    try:
        async with httpx.AsyncClient(timeout=5) as http:

            async def one_holder() -> bool:
                held = [await r.holds(http) for r in replicas]
                return sorted(held) == [False, True]

            await eventually(one_holder, timeout=30, what="one replica holding the lease")
            holder, standby = (
                replicas if await replicas[0].holds(http) else list(reversed(replicas))
            )

            # The holder does all the work; the other serves HTTP and does none.
            first = await case(http)
            await eventually(lambda: followed_up(http, replicas, first), what="case 1 followed up")
            assert set(holder.work()) == set(WORK)
            assert standby.work() == []

            # Work in flight, then the holder paused past its lease.
            second = await case(http)
            os.kill(holder.pid, signal.SIGSTOP)
            paused = time.monotonic()
            await eventually(lambda: standby.holds(http), timeout=30, what="the standby takes over")
            takeover = time.monotonic() - paused
            # Not before the lease could have expired (renewed at most a third of it before).
            assert takeover >= LEASE_SECONDS * 2 / 3 - 0.1
            await eventually(lambda: followed_up(http, replicas, second), what="case 2 followed up")
            third = await case(http)
            await eventually(lambda: followed_up(http, replicas, third), what="case 3 followed up")

            # Woken: it finds its term over before it does anything, and does nothing while the
            # other holds the lease, though there is work to do.
            woken_at = holder.offset()
            os.kill(holder.pid, signal.SIGCONT)
            fourth = await case(http)
            await eventually(lambda: followed_up(http, replicas, fourth), what="case 4 followed up")
            events = [str(line["event"]) for line in holder.lines(woken_at)]
            assert "lease.expired" in events
            assert "lease.acquired" not in events
            assert holder.work(woken_at) == [], events
            assert not await holder.holds(http)

            # The other one killed: the woken one takes the lease, and only then works again.
            killed = time.monotonic()
            standby.process.kill()
            await eventually(lambda: holder.holds(http), timeout=30, what="the first takes it back")
            back = time.monotonic() - killed
            fifth = await case(http)
            await eventually(lambda: followed_up(http, replicas, fifth), what="case 5 followed up")
            after_wake = [
                str(line["event"])
                for line in holder.lines(woken_at)
                if line.get("event") in (*WORK, "lease.acquired")
            ]
            assert after_wake[0] == "lease.acquired", after_wake
            assert set(after_wake[1:]) >= {"consumer.handled", "relay.published", "followup.due"}
            print(
                f"\nlease {LEASE_SECONDS:.0f} s: paused holder taken over in {takeover:.1f} s,"
                f" a killed holder in {back:.1f} s"
            )
    finally:
        for replica in replicas:
            if replica.process.running:
                os.kill(replica.pid, signal.SIGCONT)
            replica.process.stop()

    # Nothing lost, nothing twice: each case's contacts came due once each, on the stream once.
    due = Counter(
        json.loads(m.data)["subject"]
        for m in await stream_messages(own_nats, "kring.followup.>")
        if json.loads(m.data)["type"] == "nl.kring.follow-up-due.v1"
    )
    assert due == {str(case_id): 2 for case_id in cases}
