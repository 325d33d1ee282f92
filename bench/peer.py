"""The peer a user would pick instead of a bus: the same workflow as one eventsourcing ``System``
in one process, run by ``SingleThreadedRunner`` — a modular monolith.

The four services' own application classes, domains and HTTP routers, unchanged. Each becomes a
process application through a thin mixin: a follower receives the upstream service's *domain*
event from the in-process notification log, translates it with that service's own
``bus.translate`` into the integration event, and applies it through the same
``KringApplication.process`` the service's consumer calls (same policies, same exact tracking by
origin and position). No JSON envelope, no NATS, no relay; the rest is the same: one FastAPI app
(the four routers under ``/<service>``) in one uvicorn process, plans' delivery worker and
followup's timer loop as background tasks, each application on its own SQLite file with the
services' settings.

``SingleThreadedRunner`` (eventsourcing 9.5.6) under concurrent commands, as read in its source:
whichever thread saves first processes every prompted follower in its own thread, while other
threads' saves only add their leader's name to the prompted set. Two faults follow, and
``PeerRunner`` fixes both: (1) a prompt added after the processing thread found the set empty
but before it released its lock is lost (nothing processes it until the next save); (2) a
follower's exception propagates into whatever command happened to trigger the processing (a
stored command answered 500) and drops the other prompted names. ``PeerRunner`` re-checks the
set after releasing, contains each follower's failure (retried on optimistic-concurrency
conflicts at once, otherwise at the next prompt), and a one-second poke re-prompts every leader,
as the relays' idle poll does in the services.

Run alone: ``python -m bench.peer --port 8100`` (settings from the ``KRING_*`` environment).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import uvicorn
from eventsourcing.persistence import IntegrityError, Recording, Tracking
from eventsourcing.system import Leader, ProcessApplication, RecordingEvent, SingleThreadedRunner
from eventsourcing.system import System as EventSourcingSystem
from fastapi import APIRouter, FastAPI

from bench.report import Report, section
from bench.servers import BENCH_ENV, SERVICES, memory_mb, start_issuer, stop_issuer
from kring.local import free_port
from services.coordination import api as coordination_api
from services.coordination import bus as coordination_bus
from services.coordination.access import RULES as COORDINATION_RULES
from services.coordination.app import CoordinationApplication
from services.coordination.settings import CoordinationSettings
from services.followup import api as followup_api
from services.followup import bus as followup_bus
from services.followup.access import RULES as FOLLOWUP_RULES
from services.followup.app import FollowupApplication
from services.followup.settings import FollowupSettings
from services.intake import api as intake_api
from services.intake import bus as intake_bus
from services.intake.access import RULES as INTAKE_RULES
from services.intake.app import IntakeApplication
from services.intake.settings import IntakeSettings
from services.plans import api as plans_api
from services.plans import bus as plans_bus
from services.plans.access import RULES as PLANS_RULES
from services.plans.app import PlansApplication
from services.plans.delivery import DeliveryWorker
from services.plans.mail import SmtpMailer
from services.plans.settings import PlansSettings
from shared.access import Rule
from shared.application import KringApplication
from shared.envelope import Delivered, message_id
from shared.erasure import CaseErasedError
from shared.http import common_router, install_error_handlers, install_request_context
from shared.logging import bound_case, configure_logging, get_logger
from shared.relay import Translator
from shared.settings import ServiceSettings
from shared.store import eventsourcing_env
from shared.tokens import TokenValidator

log = get_logger(__name__)

#: Each service's own translation of its domain events into the public contract.
TRANSLATORS: Mapping[str, Translator] = {
    "intake": intake_bus.translate,
    "coordination": coordination_bus.translate,
    "plans": plans_bus.translate,
    "followup": followup_bus.translate,
}
#: Who follows whom: each service's own ``bus.FOLLOWS``.
FOLLOWS: Mapping[str, tuple[str, ...]] = {
    "intake": intake_bus.FOLLOWS,
    "coordination": coordination_bus.FOLLOWS,
    "plans": plans_bus.FOLLOWS,
    "followup": followup_bus.FOLLOWS,
}
HISTORY_RULES: Mapping[str, Rule] = {
    "intake": INTAKE_RULES["history"],
    "coordination": COORDINATION_RULES["history"],
    "plans": PLANS_RULES["history"],
    "followup": FOLLOWUP_RULES["history"],
}
ROUTERS: Mapping[str, Callable[[Any], APIRouter]] = {
    "intake": intake_api.router,
    "coordination": coordination_api.router,
    "plans": plans_api.router,
    "followup": followup_api.router,
}
#: Tries of one upstream event when a command saved the same aggregate at the same moment.
TRIES = 5
POKE_SECONDS = 1.0


class FollowsInProcess:
    """Mixin, first base: a service's application as a process application of a ``System``.

    (mypy flags ``construct_recorder`` on the classes below: eventsourcing's follower declares
    a process recorder, ``KringApplication`` an application recorder; it is a process recorder.)
    """

    #: One read of the upstream log takes this many notifications (the relays read 500).
    pull_section_size = 500

    def pull_and_process(
        self, leader_name: str, start: int | None = None, stop: int | None = None
    ) -> None:
        """As ``Follower.pull_and_process``, from an in-memory cursor: notifications that
        translate to nothing record no tracking (the relay does not publish them either), so
        the highest tracked position alone would make every prompt re-read them."""
        me: Any = self
        cursors: dict[str, int] = me.__dict__.setdefault("_cursors", {})
        if start is None:
            start = cursors.get(leader_name)
        if start is None:
            start = me.recorder.max_tracking_id(leader_name) or 0
        mapper = me.mappers[leader_name]
        for notifications in me.pull_notifications(
            leader_name, start=start, stop=stop, inclusive_of_start=False
        ):
            for notification in notifications:
                try:
                    domain_event = mapper.to_domain_event(notification)
                except CaseErasedError:
                    pass  # as the relay: an erased case's events are not passed on
                else:
                    tracking = Tracking(
                        application_name=leader_name, notification_id=notification.id
                    )
                    self.process_event(domain_event, tracking)
                cursors[leader_name] = notification.id

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        origin = tracking.application_name
        event = TRANSLATORS[origin](domain_event)
        if event is None:
            return
        delivered = Delivered(
            event=event,
            origin=origin,
            position=tracking.notification_id,
            event_id=message_id(origin, tracking.notification_id),
            time=domain_event.timestamp,
        )
        me: Any = self
        with bound_case(delivered.case_id, delivered.event_id):
            for attempt in range(TRIES):
                try:
                    me.process(delivered)  # the service's own: tracking, policy, record
                    return
                except IntegrityError:
                    if attempt == TRIES - 1:
                        raise

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        me: Any = super()
        me._notify(recordings)  # the service's own hook
        Leader._notify(self, recordings)  # type: ignore[arg-type]  # prompt the runner


def _settings() -> dict[str, ServiceSettings]:
    return {
        "intake": IntakeSettings(),
        "coordination": CoordinationSettings(),
        "plans": PlansSettings(),
        "followup": FollowupSettings(),
    }


class PeerIntake(FollowsInProcess, IntakeApplication, ProcessApplication[UUID]):  # type: ignore[misc]
    name = IntakeApplication.name  # eventsourcing names a subclass after itself otherwise


class PeerCoordination(FollowsInProcess, CoordinationApplication, ProcessApplication[UUID]):  # type: ignore[misc]
    name = CoordinationApplication.name

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        settings = CoordinationSettings()
        super().__init__(env, first_contact_days=settings.first_contact_days)


class PeerPlans(FollowsInProcess, PlansApplication, ProcessApplication[UUID]):  # type: ignore[misc]
    name = PlansApplication.name


class PeerFollowup(FollowsInProcess, FollowupApplication, ProcessApplication[UUID]):  # type: ignore[misc]
    name = FollowupApplication.name

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env, schedule=FollowupSettings().followup_schedule())


PEER_CLASSES: Mapping[str, type[KringApplication]] = {
    "intake": PeerIntake,
    "coordination": PeerCoordination,
    "plans": PeerPlans,
    "followup": PeerFollowup,
}

#: The services' follow relations as pipes of an eventsourcing System (the workflow's four:
#: the partners service takes no part in the benchmark's cases).
SYSTEM = EventSourcingSystem(
    pipes=[
        [PEER_CLASSES[origin], PEER_CLASSES[name]]
        for name, origins in FOLLOWS.items()
        for origin in origins
        if origin in PEER_CLASSES
    ]
)


class PeerRunner(SingleThreadedRunner[UUID]):
    """``SingleThreadedRunner`` made safe for commands saved from many threads at once."""

    def start(self) -> None:
        super().start()
        # A follower reads a leader's log with the leader's own mapper: the case keys are in the
        # leader's store (``shared.erasure``), as a service's relay reads its own.
        for leader_name in self.system.leaders:
            leader: Any = self.apps[leader_name]
            for follower_name in self.system.leads[leader_name]:
                follower: Any = self.apps[follower_name]
                follower.mappers[leader_name] = leader.mapper

    def receive_recording_event(self, new_recording_event: RecordingEvent[UUID]) -> None:
        self.prompt(new_recording_event.application_name)

    def prompt(self, *leader_names: str) -> None:
        with self._prompted_names_lock:
            self._prompted_names.update(leader_names)
        while self._processing_lock.acquire(blocking=False):
            try:
                self._process_prompted()
            finally:
                self._processing_lock.release()
            # A prompt added after the loop found nothing, before the lock was released, is
            # seen here; otherwise the thread holding the lock now will see it.
            with self._prompted_names_lock:
                if not self._prompted_names:
                    return

    def _process_prompted(self) -> None:
        while True:
            with self._prompted_names_lock:
                names, self._prompted_names = self._prompted_names, set()
            if not names:
                return
            for leader_name in names:
                for follower_name in self.system.leads[leader_name]:
                    follower: Any = self.apps[follower_name]
                    try:
                        follower.pull_and_process(leader_name)
                    except Exception as error:  # contained; the next prompt or poke retries
                        log.error(
                            "peer.follower_failed",
                            follower=follower_name,
                            leader=leader_name,
                            error=type(error).__name__,
                            detail=str(error)[:200],
                        )

    def poke(self) -> None:
        self.prompt(*self.system.leaders)


def runner_env(settings: Mapping[str, ServiceSettings]) -> dict[str, str]:
    """Each application's eventsourcing environment (its own SQLite file), prefixed with its
    name as eventsourcing reads it (``INTAKE_SQLITE_DBNAME`` …)."""
    env: dict[str, str] = {}
    for name, service_settings in settings.items():
        for key, value in eventsourcing_env(service_settings).items():
            env[f"{name.upper()}_{key}"] = value
    return env


def build_api(runner: PeerRunner, settings: Mapping[str, ServiceSettings]) -> FastAPI:
    apps: dict[str, Any] = {name: runner.get(PEER_CLASSES[name]) for name in SERVICES}
    plans_settings = settings["plans"]
    followup_settings = settings["followup"]
    coordination_settings = settings["coordination"]
    assert isinstance(plans_settings, PlansSettings)
    assert isinstance(followup_settings, FollowupSettings)
    assert isinstance(coordination_settings, CoordinationSettings)
    worker = DeliveryWorker(
        apps["plans"],
        SmtpMailer.from_settings(plans_settings),
        tick_seconds=plans_settings.delivery_tick_seconds,
        max_attempts=plans_settings.delivery_max_attempts,
    )

    async def every(seconds: float, job: Callable[[], Any]) -> None:
        while True:
            try:
                await asyncio.to_thread(job)
            except Exception as error:  # logged; next round
                log.error("peer.job_failed", error=type(error).__name__, detail=str(error)[:200])
            await asyncio.sleep(seconds)

    async def deliveries() -> None:
        while True:
            with contextlib.suppress(Exception):
                await worker.deliver_pending()
            await asyncio.sleep(worker.tick_seconds)

    jobs: list[Callable[[], Coroutine[Any, Any, None]]] = [
        deliveries,
        lambda: every(followup_settings.timer_tick_seconds, apps["followup"].fire_due_timers),
        lambda: every(coordination_settings.tick_seconds, apps["coordination"].record_overdue),
        lambda: every(POKE_SECONDS, runner.poke),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(job()) for job in jobs]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            runner.stop()

    api = FastAPI(title="Kring peer (one process, eventsourcing System)", lifespan=lifespan)
    # The same identity as the services: tokens of the same issuer, the same rules.
    api.state.tokens = TokenValidator(settings["intake"].oidc())
    install_error_handlers(api)
    install_request_context(api)
    for name in SERVICES:
        app = apps[name]
        history = HISTORY_RULES[name]
        api.include_router(common_router(app, list, lambda: "{}", history), prefix=f"/{name}")
        api.include_router(ROUTERS[name](app), prefix=f"/{name}")
    return api


def serve(port: int) -> None:
    settings = _settings()
    base = settings["intake"]
    configure_logging("peer", base.log_level, base.log_format)
    runner = PeerRunner(SYSTEM, env=runner_env(settings))
    runner.start()
    api = build_api(runner, settings)
    config = uvicorn.Config(
        api, host=base.http_host, port=port, log_config=None, access_log=False, lifespan="on"
    )
    uvicorn.Server(config).run()


# -- the bench's side ---------------------------------------------------------------------------
class PeerProcess:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = free_port()
        self.log = work / "peer.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def urls(self) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{self.port}/{name}" for name in SERVICES}

    def start(self, extra_env: Mapping[str, str] | None = None) -> PeerProcess:
        data = self.work / "data"
        data.mkdir(parents=True, exist_ok=True)
        env = os.environ | {
            "KRING_DATA_DIR": str(data),
            "KRING_HTTP_HOST": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
            **BENCH_ENV,
            **(extra_env or {}),
        }
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.peer", "--port", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the peer exited; see {self.log}")
            try:
                ready = httpx.get(f"{self.urls['intake']}/health/ready", timeout=1)
                if ready.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the peer was not ready within 60 s")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def peer_bench(report: Report, work: Path, sizes: Any) -> None:
    """The same closed loop as the services' (cases, concurrency), against the peer."""
    from bench import workflow_bench  # the services' bench drives the peer the same way

    section(
        f"the peer: the same workflow as one eventsourcing System (SingleThreadedRunner) in one"
        f" process, same HTTP API ({sizes.cases} cases, {sizes.concurrency} at a time)"
    )
    peer = PeerProcess(work / "peer")
    (work / "peer").mkdir(parents=True, exist_ok=True)
    issuer, issuer_url = start_issuer(work / "peer")
    peer.start({"KRING_OIDC_ISSUER": issuer_url})
    try:
        await asyncio.sleep(2.0)
        assert peer.process is not None
        pid = peer.process.pid
        report.add(
            "peer_idle_rss", "idle memory (VmRSS) peer, all four", memory_mb(pid, "VmRSS"), "MB"
        )
        async with workflow_bench.client(sizes.concurrency, issuer_url) as session:
            await workflow_bench.prepare(session, peer.urls, sizes)
            measured = await workflow_bench.measured_closed_loop(session, peer.urls, sizes, [pid])
            ids, seconds = measured.ids, measured.seconds
            report.add(
                "peer_cases",
                "peer: cases completed per second, max load",
                len(ids) / seconds,
                "cases/s",
            )
            workflow_bench.report_measured(report, "peer", "the peer (one process)", measured)
            hops = await workflow_bench.hop_latencies(session, peer.urls, ids)
            for hop, values in hops.items():
                report.add(
                    f"peer_p50 {hop}",
                    f"peer hop p50 at max load: {hop}",
                    workflow_bench.percentile(values, 0.5),
                    "ms",
                )
        report.add("peer_peak", "peak memory (VmHWM) peer, all four", memory_mb(pid, "VmHWM"), "MB")
    finally:
        peer.stop()
        stop_issuer(issuer)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__)
    parser.add_argument("--port", type=int, default=8100)
    serve(parser.parse_args().port)


if __name__ == "__main__":
    main()
