"""Raw baselines on the same server and store the services use: what nats-py and eventsourcing
do with nothing of Kring's in the way."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import nats
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy, StorageType, StreamConfig

from bench.report import Report, section
from bench.servers import Nats
from kring.replay import stream_sequence
from shared.application import KringApplication
from shared.envelope import encode
from shared.settings import ServiceSettings
from shared.store import eventsourcing_env
from tests.factories import NOW, request_received

STREAM = "BENCH"


def sample_payload() -> bytes:
    """A real envelope (RequestReceived), so message sizes match the workflow's."""
    return encode(request_received(), origin="intake", position=1, time=NOW)


async def publish_each(js: Any, count: int, payload: bytes) -> float:
    started = time.perf_counter()
    for n in range(count):
        await js.publish(f"{STREAM.lower()}.each", payload, headers={"Nats-Msg-Id": f"e{n}"})
    return count / (time.perf_counter() - started)


async def publish_gather(js: Any, count: int, payload: bytes, in_flight: int = 500) -> float:
    started = time.perf_counter()
    for first in range(0, count, in_flight):
        await asyncio.gather(
            *(
                js.publish(f"{STREAM.lower()}.gather", payload, headers={"Nats-Msg-Id": f"g{n}"})
                for n in range(first, min(first + in_flight, count))
            )
        )
    return count / (time.perf_counter() - started)


async def publish_async(js: Any, count: int, payload: bytes) -> float:
    started = time.perf_counter()
    for n in range(count):
        await js.publish_async(f"{STREAM.lower()}.async", payload, headers={"Nats-Msg-Id": f"a{n}"})
    await js.publish_async_completed()
    return count / (time.perf_counter() - started)


async def ordered_read(connection: Any, stream: str, subject: str) -> tuple[int, float]:
    """Every message of ``stream`` with an ordered consumer and a callback; (count, msg/s)."""
    js = connection.jetstream()
    last = (await js.stream_info(stream)).state.last_seq
    done = asyncio.Event()
    count = 0

    async def on_message(message: Msg) -> None:
        nonlocal count
        count += 1
        if stream_sequence(message) >= last:
            done.set()

    started = time.perf_counter()
    subscription = await js.subscribe(
        subject,
        stream=stream,
        cb=on_message,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
        pending_msgs_limit=-1,
        pending_bytes_limit=-1,
    )
    await done.wait()
    elapsed = time.perf_counter() - started
    await subscription.unsubscribe()
    return count, count / elapsed


async def nats_baselines(report: Report, work: Path, count: int) -> None:
    """On a nats-server of the same settings without identities: no Kring identity may
    publish outside ``kring.>``, and the baseline is nats-py with nothing of Kring's."""
    section(f"raw NATS baselines ({count} messages of {len(sample_payload())} bytes)")
    payload = sample_payload()
    server = Nats(work, closed=False).start()
    connection = await nats.connect(server.url)
    try:
        js = connection.jetstream(publish_async_max_pending=4000)
        await js.add_stream(
            StreamConfig(
                name=STREAM,
                subjects=[f"{STREAM.lower()}.>"],
                storage=StorageType.FILE,
                duplicate_window=120,
            )
        )
        report.add(
            "publish_each",
            "nats-py publish, awaiting each ack",
            await publish_each(js, min(count, 3000), payload),
            "msg/s",
        )
        report.add(
            "publish_gather",
            "nats-py publish, 500 in flight (gather)",
            await publish_gather(js, count, payload),
            "msg/s",
            baseline="publish_each",
        )
        report.add(
            "publish_async",
            "nats-py publish_async (4000 pending) + completed",
            await publish_async(js, count, payload),
            "msg/s",
            baseline="publish_each",
        )
        read, rate = await ordered_read(connection, STREAM, f"{STREAM.lower()}.>")
        report.add("ordered_read", f"nats-py ordered consumer read ({read} msgs)", rate, "msg/s")
        await js.delete_stream(STREAM)
    finally:
        await connection.close()
        server.stop()


class Counter(Aggregate):
    """Five events per save: created, then four changes."""

    @event("Started")
    def __init__(self) -> None:
        self.count = 0

    @event("Counted")
    def count_one(self, by: int) -> None:
        self.count += by


class StoreBench(Application[UUID]):
    """eventsourcing as it comes: the raw baseline."""

    name = "benchstore"


class KringStoreBench(KringApplication):
    """The same saves through Kring's application base: each new aggregate gets its case key
    (``shared.erasure``), every event is sealed under it."""

    name = "benchkring"


def _saves_per_second(app: Application[UUID], saves: int) -> float:
    started = time.perf_counter()
    for _ in range(saves):
        counter = Counter()
        for by in range(1, 5):
            counter.count_one(by=by)
        app.save(counter)
    return saves / (time.perf_counter() - started)


def store_baselines(report: Report, work: Path, saves: int) -> None:
    section(f"raw eventsourcing baselines (SQLite, service settings; {saves} saves x 5 events)")
    settings = ServiceSettings(service_name="benchstore", data_dir=work / "store")
    app = StoreBench(env=eventsourcing_env(settings))
    kring_settings = ServiceSettings(service_name="benchkring", data_dir=work / "store")
    kring = KringStoreBench(env=eventsourcing_env(kring_settings))
    try:
        rate = _saves_per_second(app, saves)
        report.add("es_save", "eventsourcing save, 1 aggregate x 5 events", rate * 5, "events/s")
        report.add("es_saves", "eventsourcing saves (transactions)", rate, "saves/s", quiet=True)
        report.add(
            "kring_save",
            "the same through Kring's base (a case key per new aggregate)",
            _saves_per_second(kring, saves) * 5,
            "events/s",
            baseline="es_save",
        )
        started = time.perf_counter()
        position, read = 0, 0
        while True:
            notifications = app.recorder.select_notifications(
                start=position, limit=500, inclusive_of_start=False
            )
            if not notifications:
                break
            for notification in notifications:
                app.mapper.to_domain_event(notification)
            position, read = notifications[-1].id, read + len(notifications)
        report.add(
            "es_read",
            "eventsourcing notification read + decode",
            read / (time.perf_counter() - started),
            "events/s",
        )
    finally:
        app.close()
        kring.close()
