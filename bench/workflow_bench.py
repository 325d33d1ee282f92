"""The whole workflow through the four services as separate processes on SQLite (the embedded
default), driven through their HTTP APIs with ``kring.workflow``: throughput at max load, latency
per hop at half of it, relay throughput, memory."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import statistics
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.profiling import profile_processes
from bench.report import Report, section
from bench.servers import SERVICES, System, cpu_seconds, memory_mb
from kring import workflow
from kring.client import DevLogin
from shared.events import ConferenceModel
from shared.subjects import STREAM
from tests.servers import NatsServer

REGION = "Benchland"
MODELS = (ConferenceModel.FAMILY, ConferenceModel.GROUP, ConferenceModel.RESTORATIVE)
#: (hop name, upstream service and event type, downstream service and event type or None for
#: "its first event for the case").
HOPS: tuple[tuple[str, str, str, str, str | None], ...] = (
    ("intake accepted -> coordination", "intake", "Accepted", "coordination", None),
    ("coordination held -> plans", "coordination", "ConferenceHeld", "plans", "ConferenceNoted"),
    ("plans distributed -> followup", "plans", "Distributed", "followup", None),
)
_keys = itertools.count()


async def run_case(session: workflow.Session, urls: Mapping[str, str], n: int) -> str:
    """One case, request to follow-up scheduled; the one place the bench calls the workflow."""
    run = await workflow.run_case(
        session,
        MODELS[n % len(MODELS)],
        urls=urls,
        region=REGION,
        key=f"bench-{next(_keys)}-{time.time_ns()}",
        patience=120.0,
    )
    return run.case_id


async def closed_loop(
    session: workflow.Session, urls: Mapping[str, str], cases: int, concurrency: int
) -> tuple[list[str], float]:
    """``cases`` cases, ``concurrency`` at a time; (case ids, seconds)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int) -> str:
        async with gate:
            return await run_case(session, urls, n)

    started = time.perf_counter()
    ids = await asyncio.gather(*(one(n) for n in range(cases)))
    return list(ids), time.perf_counter() - started


@dataclass
class Measured:
    ids: list[str]
    seconds: float
    #: CPU the system under test used per case (ms), all its processes together.
    cpu_ms_per_case: float
    #: CPU the load generator (this process) used, in cores.
    driver_cores: float

    @property
    def throughput(self) -> float:
        return len(self.ids) / self.seconds


async def measured_closed_loop(
    session: workflow.Session, urls: Mapping[str, str], sizes: WorkflowSizes, pids: list[int]
) -> Measured:
    """``closed_loop`` at the run's size, with the CPU it cost the system and the driver."""
    before = [cpu_seconds(pid) for pid in pids]
    driver = time.process_time()
    ids, seconds = await closed_loop(session, urls, sizes.cases, sizes.concurrency)
    used = sum(cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True))
    return Measured(ids, seconds, 1000 * used / len(ids), (time.process_time() - driver) / seconds)


def report_measured(report: Report, prefix: str, who: str, measured: Measured) -> None:
    report.add(
        f"{prefix}_cpu",
        f"CPU per case, {who}",
        measured.cpu_ms_per_case,
        "ms",
    )
    report.add(
        f"{prefix}_driver",
        "  the load generator's own CPU meanwhile (of 2 cores)",
        measured.driver_cores,
        "cores",
    )


async def open_loop(
    session: workflow.Session, urls: Mapping[str, str], cases: int, rate: float
) -> tuple[list[str], float]:
    """A new case every ``1/rate`` seconds, however many are still running."""
    started = time.perf_counter()
    tasks = []
    for n in range(cases):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(run_case(session, urls, n)))
    ids = await asyncio.gather(*tasks)
    return list(ids), time.perf_counter() - started


@contextlib.asynccontextmanager
async def client(concurrency: int, issuer: str) -> AsyncIterator[workflow.Session]:
    """The driver's HTTP client. Idle connections are dropped after 1 s, before uvicorn's
    5 s keep-alive closes them from its side (a request sent on a connection the server is
    closing at that moment fails with "Server disconnected")."""
    limits = httpx.Limits(max_connections=concurrency * 2, keepalive_expiry=1.0)
    async with httpx.AsyncClient(limits=limits) as http:
        yield workflow.Session(http, DevLogin(issuer))


async def prepare(session: workflow.Session, urls: Mapping[str, str], sizes: WorkflowSizes) -> None:
    """Coordinators enough for every case of the run, then a warm-up (imports, caches,
    consumers bound) that is not measured."""
    total = sizes.cases * 2 + sizes.half_load_cases + 10
    await workflow.join_pool(
        session, urls=urls, region=REGION, coordinators=total // 50 + 1, capacity=50
    )
    await closed_loop(session, urls, 6, 3)


async def history(session: workflow.Session, url: str, case_id: str) -> list[dict[str, Any]]:
    for attempt in range(3):
        try:
            response = await session.http.get(
                f"{url}/cases/{case_id}/history",
                headers=await session.tokens.headers(workflow.manager(REGION)),
                timeout=30,
            )
            break
        except httpx.TransportError:
            if attempt == 2:
                raise
            await asyncio.sleep(0.1)
    response.raise_for_status()
    entries: list[dict[str, Any]] = response.json()
    return entries


async def hop_latencies(
    session: workflow.Session, urls: Mapping[str, str], case_ids: list[str]
) -> dict[str, list[float]]:
    """Milliseconds from the upstream event's stored time to the downstream service's."""
    found: dict[str, list[float]] = {hop[0]: [] for hop in HOPS}
    gate = asyncio.Semaphore(16)

    async def one(case_id: str) -> None:
        async with gate:
            histories = {name: await history(session, urls[name], case_id) for name in SERVICES}
        for name, up, up_type, down, down_type in HOPS:
            upstream = [e for e in histories[up] if e["type"] == up_type]
            downstream = [e for e in histories[down] if down_type is None or e["type"] == down_type]
            if not upstream or not downstream:
                raise RuntimeError(
                    f"case {case_id}: no {up_type} in {up} or no matching event in {down};"
                    " did the services' event names change?"
                )
            start = datetime.fromisoformat(upstream[0]["time"])
            end = min(datetime.fromisoformat(e["time"]) for e in downstream)
            found[name].append((end - start).total_seconds() * 1000)

    await asyncio.gather(*(one(case_id) for case_id in case_ids))
    return found


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


async def stream_messages(server: NatsServer) -> int:
    connection = await server.connect("analyst")
    try:
        return int((await connection.jetstream().stream_info(STREAM)).state.messages)
    finally:
        await connection.close()


@dataclass
class WorkflowSizes:
    cases: int
    concurrency: int
    half_load_cases: int
    profile_seconds: float


async def workflow_bench(
    report: Report, work: Path, sizes: WorkflowSizes, *, profile: bool | None
) -> None:
    section(
        f"the workflow through four service processes on SQLite ({sizes.cases} cases,"
        f" {sizes.concurrency} at a time; then {sizes.half_load_cases} at half that rate)"
    )
    system = System(work / "system").start()
    try:
        await asyncio.sleep(2.0)  # settle: the idle figure is after start, before any work
        for name, service in system.services.items():
            idle = memory_mb(service.process.pid, "VmRSS")
            report.add(
                f"idle_rss_{name}",
                f"idle memory (VmRSS) {name}",
                idle,
                "MB",
                target="<= 80 MB",
                met=idle <= 80,
            )
        urls = system.urls
        async with client(sizes.concurrency, system.issuer_url) as session:
            await prepare(session, urls, sizes)
            assert system.nats is not None
            before = await stream_messages(system.nats)
            assert system.nats.process is not None
            measured = await measured_closed_loop(
                session,
                urls,
                sizes,
                [*(s.process.pid for s in system.services.values()), system.nats.process.pid],
            )
            ids, seconds = measured.ids, measured.seconds
            after = await stream_messages(system.nats)
            throughput = measured.throughput
            report.add(
                "services_cases", "cases completed per second, max load", throughput, "cases/s"
            )
            report_measured(report, "services", "four services + nats-server", measured)
            report.add(
                "services_relay",
                "relayed integration events per second at max load (the workflow's rate)",
                (after - before) / seconds,
                "events/s",
            )
            at_max = await hop_latencies(session, urls, ids)
            for hop, values in at_max.items():
                report.add(
                    f"max_p50 {hop}", f"hop p50 at max load: {hop}", statistics.median(values), "ms"
                )

            rate = throughput / 2
            ids, seconds = await open_loop(session, urls, sizes.half_load_cases, rate)
            report.add(
                "half_rate",
                f"half load: arrivals fixed at {rate:.1f} cases/s",
                len(ids) / seconds,
                "cases/s",
            )
            at_half = await hop_latencies(session, urls, ids)
            for hop, values in at_half.items():
                report.add(
                    f"half_p50 {hop}",
                    f"hop p50 at half load: {hop}",
                    statistics.median(values),
                    "ms",
                )
                p99 = percentile(values, 0.99)
                report.add(
                    f"half_p99 {hop}",
                    f"hop p99 at half load: {hop}",
                    p99,
                    "ms",
                    target="<= 10 ms",
                    met=p99 <= 10,
                )
            missed = any(
                f.met is False for k, f in report.figures.items() if k.startswith("half_p99")
            )
            if profile or (profile is None and missed):
                pids = {n: s.process.pid for n, s in system.services.items()}

                async def load() -> None:
                    await closed_loop(session, urls, sizes.cases, sizes.concurrency)

                await profile_processes(report, pids, load, work, sizes.profile_seconds)
        for name, service in system.services.items():
            report.add(
                f"peak_{name}",
                f"peak memory (VmHWM) {name}",
                memory_mb(service.process.pid, "VmHWM"),
                "MB",
            )
    finally:
        with contextlib.suppress(Exception):
            system.stop()


def _traced_env(work: Path) -> tuple[Path, dict[str, str]]:
    """Where the traces go, and what makes the service processes load the tracer."""
    from bench import hoptrace

    traces = work / "hop-traces"
    traces.mkdir(parents=True, exist_ok=True)
    site = work / "hop-site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text("import bench.hoptrace  # noqa: F401\n")
    root = Path(__file__).resolve().parents[1]
    path = [str(site), str(root), *filter(None, [os.environ.get("PYTHONPATH")])]
    return traces, {hoptrace.VARIABLE: str(traces), "PYTHONPATH": os.pathsep.join(path)}


#: The hops as the trace names them: (name, upstream, its event type, downstream).
TRACED_HOPS = [
    ("intake accepted -> coordination", "intake", "Accepted", "coordination"),
    ("coordination held -> plans", "coordination", "ConferenceHeld", "plans"),
    ("plans distributed -> followup", "plans", "Distributed", "followup"),
]


async def hop_stages(report: Report, work: Path, sizes: WorkflowSizes) -> None:
    """The workflow at half load with every hop traced stage by stage (``bench.hoptrace``):
    where the time of a hop goes, p50 and p99 per stage."""
    from bench import hoptrace

    section(f"where a hop's time goes ({sizes.half_load_cases} cases at half load, traced)")
    traces, extra = _traced_env(work)
    system = System(work / "traced", extra_env=extra).start()
    try:
        async with client(sizes.concurrency, system.issuer_url) as session:
            await prepare(session, system.urls, sizes)
            rate = report.value("services_cases")
            if rate is None:
                _, seconds = await closed_loop(session, system.urls, sizes.cases, sizes.concurrency)
                rate = sizes.cases / seconds
            await open_loop(session, system.urls, sizes.half_load_cases, rate / 2)
    finally:
        with contextlib.suppress(Exception):
            system.stop()
    found = hoptrace.stages(traces, TRACED_HOPS)
    for hop, per_stage in found.items():
        if not per_stage["hop"]:
            report.note(f"no traced hop {hop}")
            continue
        for stage, values in per_stage.items():
            label = f"{hop}: {stage}" if stage != "hop" else f"{hop}: the whole hop"
            report.add(
                f"trace {hop} {stage}",
                f"{label} p50 {statistics.median(values):.1f} ms, p99",
                percentile(values, 0.99),
                "ms",
            )
