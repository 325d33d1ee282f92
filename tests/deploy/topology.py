"""docker-compose.yml run for real, with faults: ``python -m tests.deploy.topology [--long]``.

What ``docker compose up`` starts (tests/deploy/compose_processes.py: three clustered
nats-servers with the compose file's config and the authorization its one-shot renders, a
PostgreSQL set up by its first-start script, the issuer, every service twice, the edge), cases of
every model driven through the workflow on the published ports with the issuer's tokens, and
meanwhile:

- **the active replica of each service killed** (-9; the one holding its lease, read from its
  ``kring_lease_held``): the other takes the relay, the consumers and the timers over; the
  seconds until it holds the lease are each takeover's time. The killed one is started again,
  as compose's ``restart: unless-stopped`` would;
- **one NATS node stopped** (the KRING stream's leader, the hardest one to lose) and started
  again after a while;
- **PostgreSQL restarted**: meanwhile every replica answers 503 on readiness, a write through
  the edge is 503 and stores nothing, and everything resumes once it is back.

The checks are the soak's (tests/faults/soak.py ``analyse``), on the PostgreSQL stores, the
stream, the dead letters and the consumers: every case in its final state, 0 lost, 0 applied
twice, nothing on the stream that no store holds, no dead letter.

The one addition to the compose file is an override file, as an operator would write one: plans
sends its e-mail copies to an SMTP server of the run's own (aiosmtpd), and a follow-up day lasts
0.02 s, so a case reaches its follow-up in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from pydantic import SecretStr

from kring import workflow
from kring.client import DevLogin, Who
from kring.workflow import CaseRun, Session, WorkflowError
from shared.events import ConferenceModel
from shared.settings import ServiceSettings, StoreKind
from shared.store import eventsourcing_env
from shared.subjects import STREAM
from tests.deploy.compose_processes import Container, Topology
from tests.deploy.files import CONSOLE
from tests.faults.soak import (
    APPLICATIONS,
    OPERATOR,
    REGIONS,
    STEPS_PER_CASE,
    TRANSLATORS,
    Checks,
    Progress,
    Recorded,
    Store,
    analyse,
    lacks,
    read_backlog,
    read_dead_letters,
    read_stream,
)
from tests.servers import Mailbox, free_port

#: The workflow services the cases go through; partners and the console are left out of this
#: run (docs/operations.md, "Pending": not measured yet, so not added to make test's time).
SERVICES = ("intake", "coordination", "plans", "followup")
LEFT_OUT = ("partners", CONSOLE)
PROBE_REGION = "Topology-probes"
PROBE_MANAGER = Who("topology-manager", ("regional_manager",), regions=(PROBE_REGION,))


def override(smtp_port: int) -> dict[str, Any]:
    """docker-compose.override.yml of this run (the compose file's own mechanism)."""
    return {
        "services": {
            "plans": {
                "environment": {
                    "KRING_SMTP_HOST": "127.0.0.1",
                    "KRING_SMTP_PORT": str(smtp_port),
                    "KRING_SMTP_FROM": "kring@example.org",
                }
            },
            "followup": {
                "environment": {
                    "KRING_FOLLOWUP_SECONDS_PER_DAY": "0.02",
                    "KRING_TIMER_TICK_SECONDS": "0.2",
                }
            },
        }
    }


@dataclass
class Plan:
    cases: int = 4
    concurrency: int = 4
    #: Rounds of killing every service's active replica (all four at once in a round).
    kill_rounds: int = 1
    #: In the long form the four are killed one after another, not at once.
    kill_one_at_a_time: bool = False
    nats_stops: int = 1
    nats_away_seconds: float = 5.0
    postgres_restarts: int = 1
    postgres_away_seconds: float = 4.0
    #: The faults land between these shares of the cases' steps.
    window: tuple[float, float] = (0.15, 0.75)
    patience: float = 180.0
    settle_seconds: float = 180.0
    seed: int = 0

    @property
    def form(self) -> str:
        return "long" if self.kill_one_at_a_time else "short"

    @classmethod
    def long(cls, cases: int = 40, seed: int = 0) -> Plan:
        return cls(
            cases=cases,
            concurrency=8,
            kill_rounds=2,
            kill_one_at_a_time=True,
            nats_stops=2,
            postgres_restarts=2,
            window=(0.1, 0.85),
            seed=seed,
        )


@dataclass
class Takeover:
    service: str
    killed: str
    by: str
    seconds: float


@dataclass
class Outcome:
    plan: Plan
    seconds: float = 0.0
    startup_seconds: float = 0.0
    cases: int = 0
    final: int = 0
    faults: list[str] = field(default_factory=list)
    takeovers: list[Takeover] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)
    checks: Checks | None = None
    emails: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        c = self.checks
        return (
            c is not None
            and self.final == self.cases
            and c.clean
            and not self.problems
            and len(self.takeovers) == 4 * self.plan.kill_rounds
        )

    def table(self) -> str:
        c = self.checks or Checks()
        rows: list[tuple[str, Any]] = [
            ("form", self.plan.form),
            ("seed", self.plan.seed),
            ("duration", f"{self.seconds:.0f} s (up in {self.startup_seconds:.0f} s)"),
            ("cases run", self.cases),
            ("cases in their final state", self.final),
            ("faults", len(self.faults)),
            ("takeovers", len(self.takeovers)),
            ("integration events the stores hold", c.expected),
            ("integration events checked on the stream", c.checked),
            ("lost", len(c.lost)),
            ("duplicated on the stream", len(c.duplicated)),
            ("on the stream, not as stored", len(c.unexpected)),
            ("reactions checked", c.reactions_checked),
            ("applied twice", len(c.applied_twice) + c.tracking_rows_twice),
            ("reactions missing", len(c.missing)),
            ("consumer backlog at the end", sum(n for n in c.backlog.values() if n > 0)),
            ("dead-lettered", c.dead_letters),
            ("e-mails the SMTP server accepted", self.emails),
            ("verdict", "PASS" if self.ok else "FAIL"),
        ]
        width = max(len(label) for label, _ in rows)
        lines = ["Kring topology (docker-compose.yml as local processes)", "-" * (width + 24)]
        lines += [f"{label:<{width}}  {value}" for label, value in rows]
        lines += ["faults:", *(f"  {fault}" for fault in self.faults)]
        lines += ["takeovers (kill -9 of the lease holder until the other holds it):"]
        lines += [
            f"  {t.service:<13} {t.seconds:5.1f} s  ({t.killed} -> {t.by})" for t in self.takeovers
        ]
        lines += [f"  {probe}" for probe in self.probes]
        lines += [f"problem: {p}" for p in self.problems]
        lines += [f"lost: {i}" for i in c.lost[:10]]
        lines += [f"applied twice: {i}" for i in c.applied_twice[:10]]
        lines += [f"missing: {i}" for i in c.missing[:10]]
        lines += [f"dead letter: {i}" for i in c.dead_letters_wrong[:10]]
        return "\n".join(lines)


# -- reading what is there ---------------------------------------------------------------------
def _secret(topology: Topology, container: Container, target: str) -> str:
    return (container.root / "run" / "secrets" / target).read_text().strip()


def read_stores(topology: Topology) -> dict[str, Store]:
    """Each service's PostgreSQL store, read as that service (its role, its schema, its key)
    with its own application class, every notification translated as its relay does."""
    stores = {}
    for service in SERVICES:
        first = topology.replicas(service)[0]
        settings = ServiceSettings(
            service_name=service,
            store=StoreKind.POSTGRES,
            postgres_url=SecretStr(_secret(topology, first, "kring_postgres_url")),
            postgres_schema=service,
            cipher_key=SecretStr(_secret(topology, first, "kring_cipher_key")),
            oidc_issuer="http://127.0.0.1",
        )
        app = APPLICATIONS[service](env=eventsourcing_env(settings))
        try:
            recorded, start = [], 0
            while True:
                page = app.recorder.select_notifications(
                    start=start, limit=500, inclusive_of_start=False
                )
                if not page:
                    break
                for notification in page:
                    event = app.mapper.to_domain_event(notification)
                    integration = TRANSLATORS[service](event)
                    published = (
                        (integration.type_name(), str(integration.case_id)) if integration else None
                    )
                    name = notification.topic.partition(":")[2]
                    recorded.append(
                        Recorded(notification.id, str(notification.originator_id), name, published)
                    )
                start = page[-1].id
            with app.queries.transaction(commit=False) as cursor:
                cursor.execute(
                    app.queries.sql(
                        "SELECT application_name, notification_id FROM {table}",
                        table=f"{service}_tracking",
                    )
                )
                tracking = [
                    (str(r["application_name"]), int(r["notification_id"]))
                    for r in cursor.fetchall()
                ]
        finally:
            app.close()
        stores[service] = Store(service, recorded, tracking)
    return stores


# -- the faults --------------------------------------------------------------------------------
class Faults:
    def __init__(
        self, topology: Topology, session: Session, outcome: Outcome, say: Callable[[str], None]
    ) -> None:
        self.topology, self.session, self.outcome, self.say = topology, session, outcome, say
        self.http = session.http

    async def metric(self, container: Container, name: str) -> float | None:
        port = next(iter(container.ports.values()))
        try:
            headers = await self.session.tokens.headers(OPERATOR)
            text = (
                await self.http.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=5)
            ).text
        except httpx.TransportError:
            return None
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name + " ")
        ]
        return values[0] if values else None

    async def active(self, service: str, timeout: float = 60.0) -> Container:
        deadline = time.monotonic() + timeout
        while True:
            for container in self.topology.replicas(service):
                if container.running and await self.metric(container, "kring_lease_held") == 1.0:
                    return container
            if time.monotonic() > deadline:
                raise AssertionError(f"no replica of {service} holds its lease")
            await asyncio.sleep(0.2)

    async def kill_active(self, services: list[str]) -> None:
        holders = {service: await self.active(service) for service in services}
        pids = {service: holders[service].pid for service in services}
        killed_at = time.monotonic()
        for container in holders.values():
            await asyncio.to_thread(container.kill)  # the engine starts it again by itself
        self.outcome.faults.append(f"kill -9 the active replica of {', '.join(services)}")

        async def taken_over(service: str) -> None:
            """Until a live process holds the lease: the other replica, or the killed one's
            container started again by the engine (whichever asks first once it expired)."""
            deadline = killed_at + 90
            while True:
                for container in self.topology.replicas(service):
                    fresh = container.running and container.pid != pids[service]
                    if fresh and await self.metric(container, "kring_lease_held") == 1.0:
                        seconds = time.monotonic() - killed_at
                        killed = holders[service].name
                        by = (
                            container.name
                            if container is not holders[service]
                            else f"{killed} (restarted)"
                        )
                        self.outcome.takeovers.append(Takeover(service, killed, by, seconds))
                        self.say(f"  {service}: {by} took over from {killed} in {seconds:.1f} s")
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"{service}: nobody took over from {holders[service].name}"
                    )
                await asyncio.sleep(0.1)

        await asyncio.gather(*(taken_over(s) for s in services))
        # Both replicas up again before the next fault (as compose's health check would say).
        for container in holders.values():
            await asyncio.to_thread(self.topology.wait_healthy, container, 120.0)

    async def stop_nats_node(self) -> None:
        connection = await self.topology.connect("admin")
        try:
            info = await connection.jetstream().stream_info(STREAM)
            leader = info.cluster.leader if info.cluster else None
        finally:
            await connection.close()
        node = next(c for c in self.topology.containers[leader or "nats-1"])
        started = time.monotonic()
        await asyncio.to_thread(node.stop)
        await asyncio.sleep(self.outcome.plan.nats_away_seconds)
        await asyncio.to_thread(node.start)
        await asyncio.to_thread(self.topology.wait_healthy, node)
        self.outcome.faults.append(
            f"{node.service} (the stream's leader) stopped, away"
            f" {time.monotonic() - started:.1f} s until healthy again"
        )

    async def restart_postgres(self) -> None:
        postgres = self.topology.postgres
        assert postgres is not None
        started = time.monotonic()
        replicas = [c for s in SERVICES for c in self.topology.replicas(s)]
        await asyncio.to_thread(postgres.stop)
        try:
            await _eventually(lambda: self._all_ready(replicas, 503), 30, "every replica not ready")
            refused = await self._write_through_edge()
            left = self.outcome.plan.postgres_away_seconds - (time.monotonic() - started)
            await asyncio.sleep(max(0.0, left))
        finally:
            await asyncio.to_thread(postgres.start)
        away = time.monotonic() - started
        await _eventually(lambda: self._all_ready(replicas, 200), 90, "every replica ready again")
        stored = await self._probes_stored()
        self.outcome.faults.append(
            f"PostgreSQL restarted: away {away:.1f} s, all ready"
            f" {time.monotonic() - started - away:.1f} s after"
        )
        self.outcome.probes.append(
            f"while PostgreSQL was away: readiness 503 on every replica answering, a write"
            f" through the edge {refused}, {stored} stored of it afterwards"
        )
        if refused != 503 or stored:
            self.outcome.problems.append(f"PostgreSQL away: a write was {refused}, {stored} stored")

    async def _all_ready(self, replicas: list[Container], status: int) -> bool:
        """Every replica answers readiness with ``status``; for 503, those that answer at all
        (one that could not start without its store is being started again by the engine),
        at least one of each service."""
        answered: set[str] = set()
        for container in replicas:
            port = next(iter(container.ports.values()))
            try:
                code = (
                    await self.http.get(f"http://127.0.0.1:{port}/health/ready", timeout=5)
                ).status_code
            except httpx.TransportError:
                if status == 503:
                    continue
                return False
            if code != status:
                return False
            answered.add(container.service)
        return answered == set(SERVICES)

    async def _write_through_edge(self) -> int:
        body = {
            "requester": {"name": "Probe", "relation": "neighbour"},
            "central_persons": ["Probe"],
            "model": "family",
            "region": PROBE_REGION,
            "languages": ["nl"],
            "description": "Submitted while PostgreSQL was away.",
        }
        headers = await self.session.tokens.headers(workflow.REQUESTER)
        url = self.topology.service_urls()["intake"]
        return (
            await self.http.post(f"{url}/cases", json=body, headers=headers, timeout=10)
        ).status_code

    async def _probes_stored(self) -> int:
        headers = await self.session.tokens.headers(PROBE_MANAGER)
        url = self.topology.service_urls()["intake"]
        listed = await self.http.get(
            f"{url}/cases", params={"region": PROBE_REGION}, headers=headers, timeout=10
        )
        answer = listed.json()
        items = answer["items"] if isinstance(answer, dict) else answer
        return len([item for item in items if item.get("region") == PROBE_REGION])


async def _eventually(check: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def fault_plan(plan: Plan) -> list[tuple[float, str, list[str]]]:
    """(share of the steps, fault, services) in order. The short form's three land at set
    shares, while cases flow; the long form's are drawn from the seed."""
    if plan.form == "short":
        return [(0.1, "kill", list(SERVICES)), (0.3, "nats", []), (0.5, "postgres", [])]
    rng = random.Random(plan.seed)
    faults: list[tuple[str, list[str]]] = []
    for _ in range(plan.kill_rounds):
        if plan.kill_one_at_a_time:
            faults += [("kill", [s]) for s in SERVICES]
        else:
            faults.append(("kill", list(SERVICES)))
    faults += [("nats", [])] * plan.nats_stops + [("postgres", [])] * plan.postgres_restarts
    rng.shuffle(faults)
    shares = sorted(rng.uniform(*plan.window) for _ in faults)
    return [(share, kind, services) for share, (kind, services) in zip(shares, faults, strict=True)]


# -- the run -----------------------------------------------------------------------------------
async def run(plan: Plan, root: Path, say: Callable[[str], None] = print) -> Outcome:
    outcome = Outcome(plan=plan, cases=plan.cases)
    started = time.monotonic()
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    topology = Topology(root, override(smtp.port), leave_out=LEFT_OUT)
    try:
        say(f"topology: up from docker-compose.yml under {root}")
        await asyncio.to_thread(topology.up)
        outcome.startup_seconds = time.monotonic() - started
        say(
            f"topology: up in {outcome.startup_seconds:.0f} s; {plan.cases} cases, {plan.form} form"
        )
        async with httpx.AsyncClient(timeout=15, trust_env=False) as http:
            session = Session(http, DevLogin(topology.url(8005)))
            urls = topology.service_urls()
            for region in REGIONS:
                await workflow.join_pool(session, urls=urls, region=region, capacity=50)
            faults = Faults(topology, session, outcome, say)
            progress = Progress(plan.cases * STEPS_PER_CASE)
            injecting = asyncio.create_task(_inject(faults, plan, progress, say))
            try:
                runs = await _drive(session, urls, plan, progress, outcome)
            finally:
                progress.finish()
                with contextlib.suppress(Exception):
                    await injecting
            if injecting.exception() is not None:
                outcome.problems.append(f"a fault failed: {injecting.exception()}")
            say(f"topology: cases done after {time.monotonic() - started:.0f} s; settling")
            outcome.final = await _settle(
                session, urls, runs, topology, plan.settle_seconds, outcome
            )
        outcome.checks = analyse(
            await asyncio.to_thread(read_stores, topology),
            await read_stream(topology),  # type: ignore[arg-type]
            await read_dead_letters(topology),  # type: ignore[arg-type]
            await read_backlog(topology),  # type: ignore[arg-type]
        )
        outcome.emails = len(mailbox.messages)
    finally:
        await asyncio.to_thread(topology.down)
        smtp.stop()
        outcome.seconds = time.monotonic() - started
    return outcome


async def _inject(
    faults: Faults, plan: Plan, progress: Progress, say: Callable[[str], None]
) -> None:
    """Each fault when its share of the steps is done, whether or not the one before has
    finished recovering (a takeover, a node coming back): faults overlap as they do."""

    async def one(share: float, kind: str, services: list[str]) -> None:
        if not await progress.reach(share):
            faults.outcome.problems.append(f"{kind} came after the cases had finished")
        say(f"  at {progress.steps} steps: {kind} {' '.join(services)}".rstrip())
        if kind == "kill":
            await faults.kill_active(services)
        elif kind == "nats":
            await faults.stop_nats_node()
        else:
            await faults.restart_postgres()

    planned = fault_plan(plan)
    if plan.form == "short":
        await asyncio.gather(*(one(*fault) for fault in planned))
    else:  # one after another: each kill alone, so each takeover is its own
        for fault in planned:
            await one(*fault)


async def _drive(
    session: Session, urls: dict[str, str], plan: Plan, progress: Progress, outcome: Outcome
) -> list[CaseRun]:
    semaphore = asyncio.Semaphore(plan.concurrency)
    models = list(ConferenceModel)
    runs: list[CaseRun] = []

    async def one(number: int) -> None:
        async with semaphore:
            progress.in_flight += 1
            try:
                runs.append(
                    await workflow.run_case(
                        session,
                        models[number % len(models)],
                        urls=urls,
                        region=REGIONS[number % len(REGIONS)],
                        key=f"topology-{plan.seed}-{number}",
                        patience=plan.patience,
                        through_follow_up=True,
                        observe=progress.observe,
                    )
                )
            except WorkflowError as error:
                outcome.problems.append(f"case {number}: {error}")
            finally:
                progress.in_flight -= 1

    await asyncio.gather(*(one(n) for n in range(plan.cases)))
    return runs


async def _settle(
    session: Session,
    urls: dict[str, str],
    runs: list[CaseRun],
    topology: Topology,
    timeout: float,
    outcome: Outcome,
) -> int:
    final: set[str] = set()
    why = ["nothing checked yet"]

    async def settled() -> bool:
        for case in runs:
            if case.case_id not in final:
                lacking = await lacks(session, urls, case)
                if lacking is not None:
                    why[0] = f"case {case.case_id}: {lacking}"
                    return False
                final.add(case.case_id)
        checks = analyse(
            await asyncio.to_thread(read_stores, topology),
            await read_stream(topology),  # type: ignore[arg-type]
            [],
            await read_backlog(topology),  # type: ignore[arg-type]
        )
        if not checks.converged:
            why[0] = "; ".join([*checks.lost[:3], *checks.missing[:3], *checks.untracked[:3]])
        return checks.converged

    deadline = time.monotonic() + timeout
    while not await settled():
        if time.monotonic() > deadline:
            outcome.problems.append(f"did not settle in {timeout:.0f} s: {why[0]}")
            break
        await asyncio.sleep(1.0)
    return len(final)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.deploy.topology", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--long", action="store_true", help="more cases, each service killed in turn, twice"
    )
    parser.add_argument("--cases", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    plan = (
        Plan.long(args.cases or 40, seed) if args.long else Plan(cases=args.cases or 4, seed=seed)
    )
    root = Path(tempfile.mkdtemp(prefix="kring-topology-"))
    outcome = asyncio.run(run(plan, root))
    print(outcome.table())
    if outcome.ok and not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"work dir kept: {root} (logs in {root / 'logs'})")
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
