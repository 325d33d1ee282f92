"""The soak: many cases through the whole system while its parts are broken on purpose, then a
count of what was lost, duplicated or applied twice.

``python -m tests.faults.soak [--cases N] [--concurrency N] [--seed S] [--long]`` runs it and
prints the figures (``make soak`` runs the long form); ``tests/faults/test_soak.py`` runs a
short form in ``make test``.

**What runs.** A nats-server from the wheel, the four services as their own processes
(``tests.servers.ServiceProcess``) on SQLite, and a real SMTP server (aiosmtpd) for the plan's
e-mailed copies. A follow-up day lasts 0.02 s; JetStream waits 2 s for an ack.

**The cases.** ``kring.workflow.run_case`` with ``through_follow_up=True``, the four models in
turn, ``concurrency`` at a time, every step through the public HTTP APIs. A case's *final state*:
in intake the request accepted and its follow-up case open, linked both ways; in coordination the
conference held and the coordinators' task ended; in plans the plan distributed and every copy
delivered; in followup every timer fired, the first contact's outcome recorded and the follow-up
conference requested.

**The faults.** A plan drawn from the seed; each fault is triggered when the cases together have
made a drawn share of their steps, so each lands while cases flow:

- ``kill -9 <service>``: down for up to ``max_down`` seconds, then started on its store;
- ``nats-server kill -9``: started again on its store at once;
- ``NATS away``: nats-server killed and kept away ``outage`` seconds; meanwhile every service
  answers 503 on ``/health/ready`` and a request submitted, clarified and accepted is stored;
- ``stream tail lost``: nats-server killed, started on a port no service knows, the last N
  messages of ``KRING`` deleted, and started again where the services find it: the way a stream
  loses its tail in a crash. The relays rewind when they reconnect, and re-publish;
- ``stream deleted and recreated`` (long form): the same with ``KRING`` deleted and created
  empty; then every service is restarted, as its durable consumers went with the stream;
- ``poison <reason>`` (long form): a message no consumer can process, on an origin's subjects.

**The checks.** On each service's store (read after the processes stopped: every notification
decoded and translated by the service's own ``bus.translate``, as its relay does), the stream,
the dead-letter stream and the durable consumers:

- *lost*: an integration event a store holds that is not on the stream (by ``origin:position``);
- *duplicated on the stream*: one ``origin:position`` on the stream more than once; and anything
  on the stream that no store holds, or that differs from what the store holds;
- *applied twice*: a follower's reaction recorded more often for a case than the upstream event
  is on the stream (coordination ``Received`` and plans ``RequestNoted`` per RequestReceived,
  plans ``CoordinatorNoted`` per CoordinatorAssigned and ``ConferenceNoted`` per ConferenceHeld,
  followup ``Opened`` and coordination ``CoordinatorTaskEnded`` per PlanDistributed, intake
  ``FollowUpOpened`` per FollowUpConferenceRequested); and a tracking row twice;
- *state agrees with the stream*: no reaction missing, every stream message of a followed origin
  in the follower's tracking, and no consumer with anything pending or unacknowledged;
- *dead-lettered*: what ``KRING_DLQ`` holds; without poison it must be empty, with poison it must
  hold each poison message once per consumer that met it, and nothing else.

The seed fixes the plan (which faults, at which share of the steps, how long, how many messages),
not the interleaving with the processes, which no seed can.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from aiosmtpd.controller import Controller
from eventsourcing.persistence import Notification
from nats.js.errors import NotFoundError

from kring import workflow
from kring.client import DevLogin, Who
from kring.workflow import REQUESTER, CaseRun, Session, WorkflowError
from services.coordination import bus as coordination_bus
from services.coordination.app import CoordinationApplication
from services.followup import bus as followup_bus
from services.followup.app import FollowupApplication
from services.intake import bus as intake_bus
from services.intake.app import IntakeApplication
from services.plans import bus as plans_bus
from services.plans.app import PlansApplication
from shared.application import KringApplication
from shared.bus import ensure_streams
from shared.consumer import durable_name
from shared.erasure import CaseKeyring
from shared.events import ConferenceModel
from shared.relay import Translator
from shared.store import case_keys_table
from shared.subjects import DLQ_STREAM, STREAM
from tests.faults.poison import REASONS, Poison, poison
from tests.harness import eventually, stream_messages
from tests.servers import Mailbox, NatsServer, ServiceProcess, free_port
from tests.tokens import session_issuer

SERVICES = ("intake", "coordination", "plans", "followup")
APPLICATIONS: dict[str, type[KringApplication]] = {
    "intake": IntakeApplication,
    "coordination": CoordinationApplication,
    "plans": PlansApplication,
    "followup": FollowupApplication,
}
TRANSLATORS: dict[str, Translator] = {
    "intake": intake_bus.translate,
    "coordination": coordination_bus.translate,
    "plans": plans_bus.translate,
    "followup": followup_bus.translate,
}
FOLLOWS: dict[str, tuple[str, ...]] = {
    "intake": intake_bus.FOLLOWS,
    "coordination": coordination_bus.FOLLOWS,
    "plans": plans_bus.FOLLOWS,
    "followup": followup_bus.FOLLOWS,
}
#: (follower, origin) for every durable consumer.
CONSUMERS = [(service, origin) for service in SERVICES for origin in FOLLOWS[service]]

#: Steps ``run_case`` marks for one case through follow-up (22 with a professional's sign-off,
#: 23 with the family's revised plan): what the fault plan's shares are shares of.
STEPS_PER_CASE = 21
POISON_PREFIX = "poison-"


@dataclass(frozen=True)
class Reaction:
    """A follower records one of ``events`` on the case for each ``upstream`` event of it (for
    the first only, with ``once``)."""

    upstream: str
    follower: str
    events: tuple[str, ...]
    once: bool = False


REACTIONS = (
    Reaction("nl.kring.request-received.v1", "coordination", ("CoordinatedCase.Received",)),
    Reaction("nl.kring.request-received.v1", "plans", ("Plan.RequestNoted",)),
    Reaction("nl.kring.coordinator-assigned.v1", "plans", ("Plan.CoordinatorNoted",)),
    Reaction("nl.kring.conference-held.v2", "plans", ("Plan.ConferenceNoted",)),
    Reaction(
        "nl.kring.plan-distributed.v1", "followup", ("FollowUp.Opened", "FollowUp.RevisedPlanNoted")
    ),
    # Once per case: a later version (the family model's revised plan) does not end it again.
    Reaction(
        "nl.kring.plan-distributed.v1",
        "coordination",
        ("CoordinatedCase.CoordinatorTaskEnded",),
        once=True,
    ),
    Reaction("nl.kring.follow-up-conference-requested.v1", "intake", ("Request.FollowUpOpened",)),
    Reaction("nl.kring.plan-revision-requested.v1", "plans", ("Plan.RevisionRequestNoted",)),
)


# -- configuration ----------------------------------------------------------------------------
@dataclass
class SoakConfig:
    cases: int = 16
    concurrency: int = 16
    seed: int = 0
    kills_per_service: int = 1
    nats_kills: int = 1
    nats_outages: int = 1
    tail_losses: int = 1
    stream_recreations: int = 0
    poison_per_reason: int = 0
    #: Messages removed from the stream's tail per loss (drawn between the two).
    tail_size: tuple[int, int] = (4, 12)
    #: Seconds NATS stays away in an outage.
    outage_seconds: float = 4.0
    #: Longest a killed service stays down before it is started again.
    max_down: float = 1.0
    #: The faults land between these shares of the cases' steps.
    window: tuple[float, float] = (0.03, 0.7)
    #: Per workflow step: how long "not yet" is waited for.
    patience: float = 120.0
    settle_seconds: float = 120.0

    @property
    def form(self) -> str:
        return "long" if self.stream_recreations or self.poison_per_reason else "short"

    @classmethod
    def long(cls, cases: int = 200, concurrency: int = 16, seed: int = 0) -> SoakConfig:
        return cls(
            cases=cases,
            concurrency=concurrency,
            seed=seed,
            kills_per_service=3,
            nats_kills=2,
            nats_outages=2,
            tail_losses=3,
            stream_recreations=1,
            poison_per_reason=2,
            tail_size=(5, 40),
            window=(0.02, 0.85),
        )


# -- the system -----------------------------------------------------------------------------
#: The regions the soak's cases are in, and a regional manager of them all (who reads the
#: final state); an operator reads the metrics.
REGIONS = [f"Soak-{n}" for n in range(4)]
PROBE_REGION = "Soak-probes"
MANAGER = Who("soak-manager", ("regional_manager",), regions=(*REGIONS, PROBE_REGION))
OPERATOR = Who("soak-operator", ("operator",))


@dataclass
class System:
    root: Path
    nats: NatsServer
    services: dict[str, ServiceProcess]
    smtp: Controller
    mailbox: Mailbox
    #: The development issuer the services take tokens of.
    issuer_url: str

    @property
    def urls(self) -> dict[str, str]:
        return {name: process.url for name, process in self.services.items()}

    @property
    def data_dir(self) -> Path:
        return self.root / "data"


def start_system(root: Path) -> System:
    # Under pytest the session's issuer; alone (make soak) one of the soak's own.
    issuer, _ = session_issuer()
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    nats_server = NatsServer(root / "nats").start()
    env = {
        "KRING_FOLLOWUP_SECONDS_PER_DAY": "0.02",
        "KRING_TIMER_TICK_SECONDS": "0.2",
        "KRING_PLANS_DELIVERY_TICK_SECONDS": "0.2",
        "KRING_CONSUMER_ACK_WAIT_SECONDS": "2",
        "KRING_SMTP_HOST": "127.0.0.1",
        "KRING_SMTP_PORT": str(smtp.port),
        "KRING_SMTP_FROM": "kring@example.org",
        "KRING_LOG_FORMAT": "json",
        "KRING_LOG_LEVEL": "INFO",
    }
    services = {
        name: ServiceProcess(name, nats_server, root / "data", log_path=logs / f"{name}.log", **env)
        for name in SERVICES
    }
    system = System(root, nats_server, services, smtp, mailbox, issuer.url)
    try:
        for process in services.values():
            process.start()
    except BaseException:
        stop_system(system)
        raise
    return system


def stop_services(system: System) -> None:
    for process in system.services.values():
        process.stop()


def stop_system(system: System) -> None:
    stop_services(system)
    system.nats.stop()
    system.smtp.stop()


async def answers(http: httpx.AsyncClient, url: str) -> int | None:
    try:
        return (await http.get(url, timeout=5)).status_code
    except httpx.TransportError:
        return None


async def all_ready(http: httpx.AsyncClient, system: System, status: int = 200) -> bool:
    codes = [await answers(http, f"{url}/health/ready") for url in system.urls.values()]
    return all(code == status for code in codes)


# -- progress and the fault plan ----------------------------------------------------------------
class Progress:
    """Counts the workflow steps done across all cases (``run_case``'s observer)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.steps = 0
        #: Cases started and not yet at their last step.
        self.in_flight = 0
        self.finished = False
        self._changed = asyncio.Event()

    def observe(self, run: CaseRun, step: str, said: str) -> None:
        self.steps += 1
        self._changed.set()

    def finish(self) -> None:
        self.finished = True
        self._changed.set()

    async def reach(self, share: float) -> bool:
        """Wait until ``share`` of the expected steps are done; whether cases still flow then
        (a fault after the last case finished would not test much)."""
        while self.steps < share * self.expected and not self.finished:
            self._changed.clear()
            await self._changed.wait()
        return self.in_flight > 0


@dataclass(frozen=True)
class Fault:
    kind: str
    target: str = ""
    at: float = 0.0

    @property
    def label(self) -> str:
        return {
            "kill": f"kill -9 {self.target}",
            "nats-kill": "nats-server kill -9",
            "nats-outage": "NATS away",
            "tail-loss": "stream tail lost",
            "stream-recreate": "stream deleted and recreated",
            "poison": f"poison {self.target}",
        }[self.kind]


def plan_faults(config: SoakConfig, rng: random.Random) -> list[Fault]:
    kinds = [Fault("kill", s) for s in SERVICES for _ in range(config.kills_per_service)]
    kinds += [Fault("nats-kill")] * config.nats_kills
    kinds += [Fault("nats-outage")] * config.nats_outages
    kinds += [Fault("tail-loss")] * config.tail_losses
    kinds += [Fault("stream-recreate")] * config.stream_recreations
    kinds += [Fault("poison", r) for r in REASONS for _ in range(config.poison_per_reason)]
    rng.shuffle(kinds)
    shares = sorted(rng.uniform(*config.window) for _ in kinds)
    return [Fault(f.kind, f.target, round(at, 4)) for f, at in zip(kinds, shares, strict=True)]


@dataclass
class Injected:
    fault: Fault
    seconds: float
    while_flowing: bool
    detail: str = ""


class Injector:
    def __init__(
        self, system: System, session: Session, rng: random.Random, config: SoakConfig
    ) -> None:
        self.system = system
        self.session = session
        self.http = session.http
        self.rng = rng
        self.config = config
        self.injected: list[Injected] = []
        self.problems: list[str] = []
        #: ``origin:position`` of the integration events removed from the stream's tail.
        self.removed: set[str] = set()
        self.poison: list[Poison] = []
        #: Requests stored while NATS was away: (case id, stored).
        self.probes: list[tuple[str, bool]] = []
        #: Redeliveries and re-publications each service's consumers found already applied
        #: (``kring_consumed_total{outcome="duplicate"}``), read before each kill and at the end.
        self.duplicates_ignored = 0

    async def run(self, plan: list[Fault], progress: Progress, say: Callable[[str], None]) -> None:
        began = time.monotonic()
        for fault in plan:
            flowing = await progress.reach(fault.at)
            started = time.monotonic()
            detail = ""
            try:
                detail = await self.inject(fault)
            except Exception as error:  # recorded; the checks afterwards show what it broke
                detail = f"FAILED: {type(error).__name__}: {error}"
                self.problems.append(f"{fault.label}: {type(error).__name__}: {error}")
            self.injected.append(Injected(fault, time.monotonic() - started, flowing, detail))
            say(
                f"  +{started - began:5.1f} s  at {progress.steps:>5} steps,"
                f" {progress.in_flight:>3} cases in flight  {fault.label}"
                f"{': ' + detail if detail else ''}"
            )

    async def inject(self, fault: Fault) -> str:
        if fault.kind == "kill":
            return await self.kill_service(fault.target)
        if fault.kind == "nats-kill":
            await self.kill_nats()
            await asyncio.to_thread(self.system.nats.start)
            return ""
        if fault.kind == "nats-outage":
            return await self.outage()
        if fault.kind == "tail-loss":
            return await self.lose_tail()
        if fault.kind == "stream-recreate":
            return await self.recreate_stream()
        if fault.kind == "poison":
            return await self.publish_poison(fault.target)
        raise ValueError(fault.kind)

    async def kill_service(self, name: str) -> str:
        process = self.system.services[name]
        self.duplicates_ignored += await duplicates_seen(self.session, process.url)
        await asyncio.to_thread(process.kill)
        down = self.rng.uniform(0, self.config.max_down)
        await asyncio.sleep(down)  # the fault's own length, not a wait for anything
        await asyncio.to_thread(process.start)
        return f"down {down:.1f} s"

    async def kill_nats(self) -> None:
        await asyncio.to_thread(self.system.nats.stop, signal.SIGKILL)

    async def outage(self) -> str:
        started = time.monotonic()
        await self.kill_nats()
        await eventually(
            lambda: all_ready(self.http, self.system, 503),
            timeout=15,
            what="every service not ready (503) while NATS is away",
        )
        self.probes.append(await self.probe())
        await asyncio.sleep(max(0.0, self.config.outage_seconds - (time.monotonic() - started)))
        await asyncio.to_thread(self.system.nats.start)
        away = time.monotonic() - started
        await eventually(
            lambda: all_ready(self.http, self.system),
            timeout=60,
            what="every service ready again after NATS returned",
        )
        return f"away {away:.1f} s, ready again after {time.monotonic() - started - away:.1f} s"

    async def probe(self) -> tuple[str, bool]:
        """Submit, clarify and accept a request while NATS is away: intake must store it."""
        intake = self.system.urls["intake"]
        body = {
            "requester": {"name": "Probe", "relation": "neighbour"},
            "central_persons": ["Probe"],
            "model": "family",
            "region": PROBE_REGION,
            "languages": ["nl"],
            "description": "Submitted while NATS was away.",
        }
        created = await workflow.call(
            self.session,
            "POST",
            f"{intake}/cases",
            REQUESTER,
            body,
            key=f"probe-{len(self.probes)}",
            patience=10,
            retry_statuses=frozenset(),
        )
        case_id = str(created["case_id"])
        clarification = {
            "conference_questions": ["Can the soak go on while NATS is away?"],
            "funding": {"payer": "municipality", "organisation": "Gemeente Utrecht"},
            "minimum_requirements": [],
        }
        for path, body_ in (("clarify", clarification), ("accept", None)):
            await workflow.call(
                self.session,
                "POST",
                f"{intake}/cases/{case_id}/{path}",
                MANAGER,
                body_,
                patience=10,
                retry_statuses=frozenset(),
            )
        state = await workflow.read(self.session, f"{intake}/cases/{case_id}", MANAGER)
        return case_id, state is not None and state["stage"] == "accepted"

    async def _offline(self, change: Callable[[Any], Any]) -> Any:
        """Kill nats-server, start it on a port no service knows, make ``change`` to its
        JetStream, stop it cleanly (the change is kept) and start it where the services find it:
        to them it is a crash after which the server came back changed."""
        await self.kill_nats()
        private = NatsServer(self.system.nats.store_dir)
        await asyncio.to_thread(private.start)
        try:
            connection = await private.connect("admin", connect_timeout=5)
            try:
                result = await change(connection.jetstream())
            finally:
                await connection.close()
        finally:
            await asyncio.to_thread(private.stop)
            await asyncio.to_thread(self.system.nats.start)
        return result

    async def lose_tail(self) -> str:
        wanted = self.rng.randint(*self.config.tail_size)
        await eventually(
            lambda: _holds(self.system.nats, wanted),
            timeout=60,
            what=f"{wanted} messages on the stream to lose",
            interval=0.1,
        )

        async def remove(js: Any) -> list[str]:
            info = await js.stream_info(STREAM)
            removed: list[str] = []
            sequence = info.state.last_seq
            while len(removed) < wanted and sequence >= max(info.state.first_seq, 1):
                with contextlib.suppress(NotFoundError):  # a gap left by an earlier loss
                    message = await js.get_msg(STREAM, seq=sequence)
                    await js.delete_msg(STREAM, sequence)
                    removed.append(_identity(message.headers, message.data))
                sequence -= 1
            return removed

        removed: list[str] = await self._offline(remove)
        events = [r for r in removed if not r.startswith(POISON_PREFIX)]
        self.removed.update(events)
        shown = ", ".join(removed[:6]) + (", ..." if len(removed) > 6 else "")
        return f"{len(removed)} messages removed ({shown})"

    async def recreate_stream(self) -> str:
        async def recreate(js: Any) -> int:
            info = await js.stream_info(STREAM)
            await js.delete_stream(STREAM)
            await ensure_streams(js)
            return int(info.state.messages)

        dropped = await self._offline(recreate)
        # A service's durable consumers went with the stream; only a start creates them again.
        for name in SERVICES:
            await self.kill_service(name)
        return f"{dropped} messages dropped; every service restarted"

    async def publish_poison(self, reason: str) -> str:
        origin = self.rng.choice(SERVICES)
        message = poison(reason, len(self.poison) + 1, origin)

        async def publish() -> bool:
            try:
                connection = await self.system.nats.connect(origin, connect_timeout=2)
            except Exception:  # NATS not back yet
                return False
            try:
                await connection.jetstream().publish(
                    message.subject, message.body, headers=message.headers
                )
            finally:
                await connection.close()
            return True

        await eventually(publish, timeout=30, what="poison published", interval=0.2)
        self.poison.append(message)
        return f"on {message.subject}"

    async def count_duplicates_now(self) -> None:
        for process in self.system.services.values():
            self.duplicates_ignored += await duplicates_seen(self.session, process.url)


async def _holds(server: NatsServer, count: int) -> bool:
    try:
        connection = await server.connect("analyst", connect_timeout=2, allow_reconnect=False)
    except Exception:  # NATS not back yet
        return False
    try:
        info = await connection.jetstream().stream_info(STREAM)
        return int(info.state.messages) >= count
    except NotFoundError:
        return False
    finally:
        await connection.close()


def _identity(headers: Mapping[str, str] | None, data: bytes | None) -> str:
    """A stream message's ``origin:position``, or its poison id."""
    msg_id = (headers or {}).get("Nats-Msg-Id", "")
    if msg_id.startswith(POISON_PREFIX):
        return msg_id
    return str(json.loads(data or b"{}")["id"])


async def duplicates_seen(session: Session, url: str) -> int:
    """What the service's consumers found already applied since it started (0 if it does not
    answer)."""
    try:
        headers = await session.tokens.headers(OPERATOR)
        text = (await session.http.get(f"{url}/metrics", headers=headers, timeout=5)).text
    except httpx.TransportError:
        return 0
    total = 0.0
    for line in text.splitlines():
        if line.startswith("kring_consumed_total{") and 'outcome="duplicate"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


# -- driving the cases --------------------------------------------------------------------------
async def drive(
    session: Session,
    system: System,
    config: SoakConfig,
    regions: list[str],
    progress: Progress,
) -> tuple[list[CaseRun], list[str]]:
    semaphore = asyncio.Semaphore(config.concurrency)
    models = list(ConferenceModel)
    runs: list[CaseRun] = []
    failures: list[str] = []

    async def one(number: int) -> None:
        async with semaphore:
            progress.in_flight += 1
            try:
                run = await workflow.run_case(
                    session,
                    models[number % len(models)],
                    urls=system.urls,
                    region=regions[number % len(regions)],
                    key=f"soak-{config.seed}-{number}",
                    patience=config.patience,
                    through_follow_up=True,
                    observe=progress.observe,
                )
            except WorkflowError as error:
                failures.append(f"case {number}: {error}")
            else:
                runs.append(run)
            finally:
                progress.in_flight -= 1

    await asyncio.gather(*(one(n) for n in range(config.cases)))
    return runs, failures


async def lacks(session: Session, urls: Mapping[str, str], run: CaseRun) -> str | None:
    """What keeps a case from its final state (None: it is there), as the regional manager
    reads it."""
    case, linked = run.case_id, run.follow_up_case_id

    async def get(service: str, path: str) -> Any:
        return await workflow.read(session, f"{urls[service]}/cases/{case}{path}", MANAGER)

    intake = await get("intake", "")
    if intake is None or intake["stage"] != "accepted" or intake["follow_ups"] != [linked]:
        return "intake: not accepted with its follow-up case"
    follow_up_case = await workflow.read(session, f"{urls['intake']}/cases/{linked}", MANAGER)
    if follow_up_case is None or follow_up_case["follow_up_of"] != case:
        return "intake: the follow-up case is not linked back"
    coordination = await get("coordination", "")
    if (
        coordination is None
        or coordination["stage"] != "conference_held"
        or coordination["task_ended_at"] is None
    ):
        return "coordination: the conference held and the task ended"
    plan = await get("plans", "/plan")
    deliveries = await get("plans", "/plan/deliveries")
    if plan is None or plan["stage"] != "plan_distributed" or deliveries is None:
        return "plans: the plan distributed"
    if not deliveries or any(d["status"] not in workflow.DELIVERED for d in deliveries):
        return "plans: every copy delivered"
    follow_up = await get("followup", "")
    if follow_up is None or any(t["fired_at"] is None for t in follow_up["timers"]):
        return "followup: every timer fired"
    if not follow_up["outcomes"] or follow_up["follow_up_cases"] != [linked]:
        return "followup: an outcome and the follow-up conference"
    return None


# -- reading what is there ----------------------------------------------------------------------
@dataclass(frozen=True)
class Recorded:
    """One stored event of a service: its notification id, case, name, and what its relay
    publishes it as (None: nothing)."""

    position: int
    case_id: str
    name: str
    published: tuple[str, str] | None


@dataclass
class Store:
    service: str
    recorded: list[Recorded]
    tracking: list[tuple[str, int]]


class ReadOnlyCaseKeys:
    """A store's case keys, read without writing (as ``shared.erasure.CaseKeys`` reads them)."""

    def __init__(self, path: Path, service: str) -> None:
        self.path = path
        self.table = case_keys_table(service)

    def case_key(self, case_id: UUID) -> tuple[str | None, bool] | None:
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as db:
            row = db.execute(
                f"SELECT key, erased_at FROM {self.table} WHERE case_id = ?",
                (str(case_id),),
            ).fetchone()
        return None if row is None else (row[0], row[1] is not None)


class StoreReader:
    """Reads a service's SQLite store read-only (also while the service runs) and decodes each
    notification with the service's own mapper (an application of its class on a scratch
    database supplies it)."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self._decoders: dict[str, KringApplication] = {}

    def _decoder(self, service: str) -> KringApplication:
        if service not in self._decoders:
            self.scratch.mkdir(parents=True, exist_ok=True)
            self._decoders[service] = APPLICATIONS[service](
                env={
                    "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                    "SQLITE_DBNAME": str(self.scratch / f"{service}-decoder.sqlite"),
                    "SINGLE_ROW_TRACKING": "f",
                    "CREATE_TABLE": "y",
                }
            )
        return self._decoders[service]

    def read(self, service: str, data_dir: Path) -> Store:
        path = data_dir / f"{service}.sqlite"
        decoder, translate = self._decoder(service), TRANSLATORS[service]
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute(
                "SELECT rowid, originator_id, originator_version, topic, state"
                " FROM stored_events ORDER BY rowid"
            ).fetchall()
            tracking = [
                (str(origin), int(position))
                for origin, position in db.execute(
                    "SELECT application_name, notification_id FROM tracking"
                ).fetchall()
            ]
        # Case events are sealed under case keys kept in the same store (shared.erasure).
        decoder.mapper.keyring = CaseKeyring(ReadOnlyCaseKeys(path, service), decoder.mapper.cipher)
        recorded = []
        for rowid, originator_id, version, topic, state in rows:
            notification = Notification(
                id=rowid,
                originator_id=UUID(originator_id),
                originator_version=version,
                topic=topic,
                state=state,
            )
            event = decoder.mapper.to_domain_event(notification)
            integration = translate(event)
            published = (integration.type_name(), str(integration.case_id)) if integration else None
            name = topic.partition(":")[2]
            recorded.append(Recorded(rowid, str(notification.originator_id), name, published))
        return Store(service, recorded, tracking)

    def read_all(self, data_dir: Path) -> dict[str, Store]:
        return {service: self.read(service, data_dir) for service in SERVICES}

    def close(self) -> None:
        for decoder in self._decoders.values():
            decoder.close()


@dataclass(frozen=True)
class OnStream:
    """One message on ``KRING``: an integration event, or poison (``poison`` is its id)."""

    id: str
    origin: str
    position: int
    type: str
    subject: str
    poison: str | None = None


async def read_stream(server: NatsServer) -> list[OnStream]:
    found = []
    for message in await stream_messages(server):
        msg_id = (message.headers or {}).get("Nats-Msg-Id", "")
        if msg_id.startswith(POISON_PREFIX):
            found.append(OnStream(msg_id, "", 0, "", "", poison=msg_id))
            continue
        envelope = json.loads(message.data)
        found.append(
            OnStream(
                id=envelope["id"],
                origin=envelope["kringorigin"],
                position=int(envelope["kringposition"]),
                type=envelope["type"],
                subject=envelope["subject"],
            )
        )
    return found


@dataclass(frozen=True)
class Parked:
    consumer: str
    reason: str
    body: bytes


async def read_dead_letters(server: NatsServer) -> list[Parked]:
    connection = await server.connect("operator")
    try:
        js = connection.jetstream()
        try:
            info = await js.stream_info(DLQ_STREAM)
        except NotFoundError:
            return []
        parked = []
        for sequence in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
            try:
                message = await js.get_msg(DLQ_STREAM, seq=sequence)
            except NotFoundError:
                continue
            headers = message.headers or {}
            parked.append(
                Parked(
                    headers.get("Kring-DLQ-Consumer", "?"),
                    headers.get("Kring-DLQ-Reason", "?"),
                    message.data or b"",
                )
            )
        return parked
    finally:
        await connection.close()


async def read_backlog(server: NatsServer) -> dict[str, int]:
    """Per durable consumer: messages pending or unacknowledged (-1: the consumer is missing)."""
    connection = await server.connect("operator")
    try:
        js = connection.jetstream()
        backlog = {}
        for service, origin in CONSUMERS:
            name = durable_name(service, origin)
            try:
                info = await js.consumer_info(STREAM, name)
            except NotFoundError:
                backlog[name] = -1
                continue
            backlog[name] = int(info.num_pending) + int(info.num_ack_pending)
        return backlog
    finally:
        await connection.close()


# -- the checks ---------------------------------------------------------------------------------
@dataclass
class Checks:
    expected: int = 0
    checked: int = 0
    stream_messages: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    reactions_checked: int = 0
    applied_twice: list[str] = field(default_factory=list)
    tracking_rows_twice: int = 0
    missing: list[str] = field(default_factory=list)
    untracked: list[str] = field(default_factory=list)
    backlog: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    dead_letters_expected: int = 0
    dead_letters_wrong: list[str] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return not (self.lost or self.missing or self.untracked or any(self.backlog.values()))

    @property
    def clean(self) -> bool:
        return (
            self.converged
            and not (self.duplicated or self.unexpected or self.applied_twice)
            and self.tracking_rows_twice == 0
            and not self.dead_letters_wrong
            and self.dead_letters == self.dead_letters_expected
        )


def analyse(
    stores: Mapping[str, Store],
    stream: list[OnStream],
    dead: list[Parked],
    backlog: Mapping[str, int],
    poisoned: Iterable[Poison] = (),
) -> Checks:
    checks = Checks(stream_messages=len(stream), backlog=dict(backlog))
    # What each store says its relay must publish, by origin:position.
    expected: dict[str, tuple[str, str]] = {}
    for service, store in stores.items():
        for r in store.recorded:
            if r.published is not None:
                expected[f"{service}:{r.position}"] = r.published
    checks.expected = len(expected)
    events = [m for m in stream if m.poison is None]
    copies = Counter(m.id for m in events)
    checks.checked = sum(1 for i in copies if i in expected)
    checks.lost = sorted(set(expected) - set(copies))
    checks.duplicated = sorted(i for i, n in copies.items() if n > 1)
    checks.unexpected = sorted({m.id for m in events if expected.get(m.id) != (m.type, m.subject)})

    # Reactions: per case, one for each upstream event its origin's store holds (with nothing
    # lost, the same as each distinct one on the stream).
    upstream: Counter[tuple[str, str]] = Counter(expected.values())
    for reaction in REACTIONS:
        recorded = Counter(
            r.case_id for r in stores[reaction.follower].recorded if r.name in reaction.events
        )
        cases = {case for (kind, case) in upstream if kind == reaction.upstream} | set(recorded)
        for case in cases:
            wanted, done = upstream[(reaction.upstream, case)], recorded[case]
            if reaction.once:
                wanted = min(wanted, 1)
            checks.reactions_checked += done
            what = f"{reaction.follower} {'/'.join(reaction.events)} for {case}: {done}x, "
            if done > wanted:
                checks.applied_twice.append(what + f"upstream {wanted}x")
            elif done < wanted:
                checks.missing.append(what + f"upstream {wanted}x")

    # Tracking: once per row, and covering every message of each followed origin.
    for service, store in stores.items():
        rows = Counter(store.tracking)
        checks.tracking_rows_twice += sum(n - 1 for n in rows.values() if n > 1)
        for origin in FOLLOWS[service]:
            for message in events:
                if message.origin == origin and (origin, message.position) not in rows:
                    checks.untracked.append(f"{service} has not tracked {message.id}")

    # Dead letters: nothing but poison, each poison once per consumer that met it.
    poisoned = list(poisoned)
    by_body = {p.body: p for p in poisoned}
    on_stream = {m.poison for m in stream if m.poison}
    checks.dead_letters = len(dead)
    parked = Counter((d.body, d.consumer) for d in dead)
    for d in dead:
        if d.body not in by_body:
            checks.dead_letters_wrong.append(f"{d.consumer}: {d.reason} (not poison)")
        elif by_body[d.body].reason != d.reason:
            checks.dead_letters_wrong.append(f"{d.consumer}: {d.reason} for {d.body[:40]!r}")
    for (_body, consumer), n in parked.items():
        if n > 1:
            checks.dead_letters_wrong.append(f"{consumer} parked one poison message {n}x")
    for p in poisoned:
        origin = p.subject.split(".")[1]
        followers = [durable_name(s, origin) for s in SERVICES if origin in FOLLOWS[s]]
        if p.msg_id in on_stream:
            checks.dead_letters_expected += len(followers)
        else:  # lost with the stream's tail before every consumer met it: at most once each
            checks.dead_letters_expected += sum(1 for f in followers if parked[(p.body, f)])
    return checks


# -- the figures --------------------------------------------------------------------------------
@dataclass
class Figures:
    seed: int
    form: str
    seconds: float
    cases: int
    final: int
    faults: dict[str, int]
    faults_outside_flow: int
    checks: Checks
    republished: tuple[int, int]
    duplicates_ignored: int
    probes: tuple[int, int]
    poison: int
    emails: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return (
            self.final == self.cases
            and self.checks.clean
            and self.faults_outside_flow == 0
            and self.republished[0] == self.republished[1]
            and self.probes[0] == self.probes[1]
            and not self.problems
        )

    def table(self) -> str:
        c = self.checks
        rows: list[tuple[str, Any]] = [
            ("seed", f"{self.seed}   (again: --seed {self.seed}, or KRING_SOAK_SEED={self.seed})"),
            ("form", self.form),
            ("duration", f"{self.seconds:.0f} s"),
            ("cases run", self.cases),
            ("cases in their final state", self.final),
            ("faults injected", sum(self.faults.values())),
            *((f"  {label}", n) for label, n in sorted(self.faults.items())),
            ("faults after the cases had finished", self.faults_outside_flow),
            ("requests stored while NATS was away", f"{self.probes[0]} of {self.probes[1]}"),
            ("integration events the stores hold", c.expected),
            ("integration events checked on the stream", c.checked),
            ("messages on the stream", c.stream_messages),
            ("lost", len(c.lost)),
            ("duplicated on the stream", len(c.duplicated)),
            ("on the stream, not as stored", len(c.unexpected)),
            ("removed from the tail, back on the stream", "{} of {}".format(*self.republished)),
            ("reactions checked", c.reactions_checked),
            ("applied twice", len(c.applied_twice) + c.tracking_rows_twice),
            ("reactions missing", len(c.missing)),
            ("stream messages a follower has not tracked", len(c.untracked)),
            ("consumer backlog at the end", sum(n for n in c.backlog.values() if n > 0)),
            ("redeliveries found already applied (at least)", self.duplicates_ignored),
            ("poison messages published", self.poison),
            ("dead-lettered", f"{c.dead_letters} (expected {c.dead_letters_expected})"),
            ("dead letters that should not be", len(c.dead_letters_wrong)),
            ("e-mails the SMTP server accepted", self.emails),
            ("verdict", "PASS" if self.ok else "FAIL"),
        ]
        width = max(len(label) for label, _ in rows)
        lines = ["Kring soak", "-" * (width + 24)]
        lines += [f"{label:<{width}}  {value}" for label, value in rows]
        examples = [
            *(f"problem: {p}" for p in self.problems),
            *(f"lost: {i}" for i in c.lost[:10]),
            *(f"duplicated: {i}" for i in c.duplicated[:10]),
            *(f"not as stored: {i}" for i in c.unexpected[:10]),
            *(f"applied twice: {i}" for i in c.applied_twice[:10]),
            *(f"missing: {i}" for i in c.missing[:10]),
            *(f"untracked: {i}" for i in c.untracked[:10]),
            *(f"backlog: {k} {v}" for k, v in c.backlog.items() if v),
            *(f"dead letter: {i}" for i in c.dead_letters_wrong[:10]),
        ]
        return "\n".join(lines + examples)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


# -- the run ------------------------------------------------------------------------------------
async def settle(
    session: Session,
    system: System,
    runs: list[CaseRun],
    reader: StoreReader,
    timeout: float,
) -> tuple[int, str | None]:
    """Wait until every case is in its final state and the stream, the stores and the consumers
    agree. Returns the cases in their final state and, if it never settled, why."""
    final: set[str] = set()
    why: list[str] = ["nothing checked yet"]

    async def settled() -> bool:
        for run in runs:
            if run.case_id not in final:
                lacking = await lacks(session, system.urls, run)
                if lacking is not None:
                    why[0] = f"case {run.case_id}: {lacking}"
                    return False
                final.add(run.case_id)
        stores = await asyncio.to_thread(reader.read_all, system.data_dir)
        stream = await read_stream(system.nats)
        backlog = await read_backlog(system.nats)
        checks = analyse(stores, stream, [], backlog)
        if not checks.converged:
            why[0] = "; ".join(
                [*checks.lost[:3], *checks.missing[:3], *checks.untracked[:3]]
                + [f"{k}: {v} pending" for k, v in checks.backlog.items() if v]
            )
        return checks.converged

    try:
        await eventually(settled, timeout=timeout, what="the system to settle", interval=0.5)
    except AssertionError:
        return len(final), f"did not settle in {timeout:.0f} s: {why[0]}"
    return len(final), None


async def run_soak(config: SoakConfig, root: Path, say: Callable[[str], None] = print) -> Figures:
    rng = random.Random(config.seed)
    plan = plan_faults(config, rng)
    say(
        f"soak: seed {config.seed}, {config.cases} cases ({config.concurrency} at a time),"
        f" {len(plan)} faults, {config.form} form; work dir {root}"
    )
    started = time.monotonic()
    system = await asyncio.to_thread(start_system, root)
    reader = StoreReader(root / "scratch")
    problems: list[str] = []
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            session = Session(http, DevLogin(system.issuer_url))
            await eventually(
                lambda: all_ready(http, system), timeout=60, what="every service ready"
            )
            regions = REGIONS
            for region in regions:
                await workflow.join_pool(session, urls=system.urls, region=region, capacity=50)
            progress = Progress(config.cases * STEPS_PER_CASE)
            injector = Injector(system, session, rng, config)
            faults = asyncio.create_task(injector.run(plan, progress, say))
            try:
                runs, failures = await drive(session, system, config, regions, progress)
            finally:
                progress.finish()
                await faults
            problems += failures + injector.problems
            say(f"soak: cases done after {time.monotonic() - started:.0f} s; settling")
            final, unsettled = await settle(session, system, runs, reader, config.settle_seconds)
            if unsettled:
                problems.append(unsettled)
            await injector.count_duplicates_now()
        await asyncio.to_thread(stop_services, system)
        # Every process did all it had to within its permissions.
        problems += [f"NATS refused: {line}" for line in system.nats.violations()]
        # The final figures: from the stores as the stopped services left them.
        stores = await asyncio.to_thread(reader.read_all, system.data_dir)
        stream = await read_stream(system.nats)
        checks = analyse(
            stores,
            stream,
            await read_dead_letters(system.nats),
            await read_backlog(system.nats),
            injector.poison,
        )
        on_stream = {m.id for m in stream}
        late = sum(1 for i in injector.injected if not i.while_flowing)
        if late:
            problems.append(
                f"{late} of {len(injector.injected)} faults came after the last case had finished"
                " and tested nothing: too few cases for this fault plan (the long form wants"
                " about 150 or more, e.g. make soak SOAK_CASES=200)"
            )
        return Figures(
            seed=config.seed,
            form=config.form,
            seconds=time.monotonic() - started,
            cases=config.cases,
            final=final,
            faults=dict(Counter(i.fault.label for i in injector.injected)),
            faults_outside_flow=late,
            checks=checks,
            republished=(len(injector.removed & on_stream), len(injector.removed)),
            duplicates_ignored=injector.duplicates_ignored,
            probes=(sum(1 for _, ok in injector.probes if ok), len(injector.probes)),
            poison=len(injector.poison),
            emails=len(system.mailbox.messages),
            problems=problems,
        )
    finally:
        reader.close()
        await asyncio.to_thread(stop_system, system)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.faults.soak", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--cases", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=None, help="default: drawn, and printed")
    parser.add_argument("--long", action="store_true", help="more of every fault, poison too")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, stores)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    if args.long:
        config = SoakConfig.long(args.cases or 200, args.concurrency, seed)
    else:
        config = SoakConfig(cases=args.cases or 16, concurrency=args.concurrency, seed=seed)
    root = Path(tempfile.mkdtemp(prefix="kring-soak-"))
    figures = asyncio.run(run_soak(config, root))
    print(figures.table())
    if args.json:
        args.json.write_text(json.dumps(figures.as_dict(), indent=2, default=str))
    if figures.ok and not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"work dir kept: {root} (service logs in {root / 'logs'})")
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
