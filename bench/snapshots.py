"""Loading aggregates with long histories, with and without their snapshots
(``make bench BENCH_ONLY=snapshots``): coordination's case after its whole preparation, its
coordinator pool after thousands of cases, a plan with its copies delivered, and an erasure log
of a thousand erasures; each loaded from the same SQLite store by an application that reads
snapshots and by one that replays every event."""

from __future__ import annotations

import random
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventsourcing.application import project_aggregate
from pydantic import SecretStr

from bench.history_seed import REGIONS, SeedClock, Seeder
from bench.report import Report, section
from services.coordination.app import CoordinationApplication
from services.coordination.pool import POOL_ID
from services.followup.app import FollowupApplication
from services.intake.app import IntakeApplication
from services.plans.app import PlansApplication
from shared.application import KringApplication, mutate_all
from shared.cipher import AESGCMCipher
from shared.erasure import ERASURE_LOG_ID
from shared.settings import ServiceSettings
from shared.store import eventsourcing_env

APPS: dict[str, type[KringApplication]] = {
    "intake": IntakeApplication,
    "coordination": CoordinationApplication,
    "plans": PlansApplication,
    "followup": FollowupApplication,
}
LOADS = 200
ERASURES = 1000


def _open(work: Path, keys: dict[str, str], name: str, clock: Any = None) -> Any:
    settings = ServiceSettings(
        service_name=name,
        data_dir=work,
        oidc_issuer="http://issuer.invalid",
        cipher_key=SecretStr(keys[name]),
    )
    return APPS[name](env=eventsourcing_env(settings), clock=clock)  # type: ignore[call-arg]


def _timed(load: Any, ids: list[Any]) -> tuple[float, float]:
    times = []
    for aggregate_id in ids:
        started = time.perf_counter()
        load(aggregate_id)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]


def _replayed(app: KringApplication, aggregate_id: Any) -> Any:
    """The aggregate from every one of its events, no snapshot, as Kring loads it now."""
    app.keyring.refresh(aggregate_id)
    return mutate_all(None, app.events.get(aggregate_id))


def _as_before(app: KringApplication, aggregate_id: Any) -> Any:
    """As loading was before: every event, each checked against eventsourcing's runtime
    protocol (``project_aggregate``)."""
    return project_aggregate(None, app.events.get(aggregate_id))


def snapshot_bench(report: Report, work: Path, cases: int) -> None:
    section(f"snapshots: loading long histories with and without them ({cases:,} cases seeded)")
    work.mkdir(parents=True, exist_ok=True)
    keys = {name: AESGCMCipher.create_key(32) for name in APPS}
    clock = SeedClock()
    apps = {name: _open(work, keys, name, clock) for name in APPS}
    Seeder(**apps, clock=clock, seed=21, batch=200).seed(cases)
    for app in apps.values():
        app.close()

    chooser = random.Random(2)  # noqa: S311 - which cases, not a secret
    coordination: CoordinationApplication = _open(work, keys, "coordination")
    plans: PlansApplication = _open(work, keys, "plans")
    try:
        manager = _manager()
        held = [r["case_id"] for r in coordination.views.cases(stage="conference_held")]
        distributed = [r["case_id"] for r in plans.views.cases(manager, stage="plan_distributed")]
        for label, app, ids in (
            ("coordination: a case after its conference", coordination, held),
            ("plans: a distributed plan, its copies delivered", plans, distributed),
        ):
            chosen = chooser.sample(ids, min(LOADS, len(ids)))
            events = statistics.median(len(app.recorder.select_events(i)) for i in chosen)
            with_p50, with_p99 = _timed(app.repository.get, chosen)
            without = _timed(lambda i, a=app: _replayed(a, i), chosen)
            before = _timed(lambda i, a=app: _as_before(a, i), chosen)
            _add(report, label, events, (with_p50, with_p99), without, before)

        # The pool, as a new process loads it once (then it is kept up to date in memory).
        events = len(coordination.recorder.select_events(POOL_ID))
        with_snapshot = _timed(coordination.repository.get, [POOL_ID] * 20)
        without = _timed(lambda i: _replayed(coordination, i), [POOL_ID] * 5)
        before = _timed(lambda i: _as_before(coordination, i), [POOL_ID] * 5)
        _add(report, "coordination: the pool", events, with_snapshot, without, before)
    finally:
        coordination.close()
        plans.close()

    intake: IntakeApplication = _open(work, keys, "intake")
    try:
        log = intake.erasure_log()
        for n in range(ERASURES):
            log.record(
                case_id=uuid.uuid4(),
                model="family",
                reason="retention_ended",
                at=datetime.now(UTC),
                actor={"id": "operator", "role": "operator"},
                erased_with=None,
            )
            if n % 100 == 99:
                intake.save(log)
        intake.save(log)
        events = len(intake.recorder.select_events(ERASURE_LOG_ID))
        ids = [ERASURE_LOG_ID] * 20
        with_snapshot = _timed(intake.repository.get, ids)
        without = _timed(lambda i: _replayed(intake, i), ids)
        before = _timed(lambda i: _as_before(intake, i), ids)
        _add(report, "every service: the erasure log", events, with_snapshot, without, before)
    finally:
        intake.close()


def _manager() -> Any:
    from bench.history_seed import manager as one

    principal = one(REGIONS[0])
    return type(principal)(subject="rm", name="rm", roles=principal.roles, regions=REGIONS)


def _add(
    report: Report,
    label: str,
    events: float,
    with_snapshot: tuple[float, float],
    replayed: tuple[float, float],
    before: tuple[float, float],
) -> None:
    key = "snapshot_" + label.split(":")[0].replace(" ", "_") + "_" + label.split()[-1]
    report.add(f"{key}_before", f"{label} ({events:.0f} events)", before[0], "ms p50")
    report.add(f"{key}_before_p99", "  before: every event, protocol-checked: p99", before[1], "ms")
    report.add(
        f"{key}_replayed",
        "  every event, unchecked: p50",
        replayed[0],
        "ms",
        baseline=f"{key}_before",
    )
    report.add(
        f"{key}_after",
        "  from its latest snapshot: p50",
        with_snapshot[0],
        "ms",
        baseline=f"{key}_before",
    )
    report.add(f"{key}_after_p99", "  from its latest snapshot: p99", with_snapshot[1], "ms")
