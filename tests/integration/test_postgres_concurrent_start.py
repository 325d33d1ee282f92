"""Eight service processes (two of each service) started at the same moment against one empty
PostgreSQL database, round after round: every one comes up and works, and what each service
creates in the schema is its own (``<service>_*`` tables; nothing shared but eventsourcing's row
type). Processes on a busy machine reach their first statement seconds apart, so the same eight
stores are also opened in threads released at one instant by a barrier: before the schema lock
every such round failed (duplicate ``pg_type`` and ``pg_proc`` entries, "tuple concurrently
updated"). ``KRING_TEST_START_ROUNDS`` and ``KRING_TEST_OPEN_ROUNDS`` rounds (``make soak``:
more)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from services.coordination.app import CoordinationApplication
from services.coordination.views import CoordinationViews
from services.followup.app import FollowupApplication
from services.followup.views import FollowupViews
from services.intake.app import IntakeApplication
from services.intake.views import IntakeViews
from services.plans.app import PlansApplication
from services.plans.views import PlansViews
from shared.application import KringApplication
from shared.settings import ServiceSettings, StoreKind
from shared.store import eventsourcing_env
from shared.views import ERASED
from tests.factories import REQUEST_BODY, headers
from tests.servers import NatsServer, ServiceProcess

ROUNDS = int(os.environ.get("KRING_TEST_START_ROUNDS", "2"))
OPEN_ROUNDS = int(os.environ.get("KRING_TEST_OPEN_ROUNDS", "10"))
APPLICATIONS: tuple[type[KringApplication], ...] = (
    IntakeApplication,
    CoordinationApplication,
    PlansApplication,
    FollowupApplication,
)
SERVICES = ("intake", "coordination", "plans", "followup")
REPLICAS = 2
UP_SECONDS = 90.0
#: What the four services may create in a schema: each one's own tables, nothing shared
#: (beside eventsourcing's: its read model's and their generation's, and its snapshots).
OWN_TABLES = {
    "events",
    "tracking",
    "relay",
    "case_keys",
    "store",
    "access_log",
    "snapshots",
    "views",
    "lease",
}


def own_tables(service: str) -> set[str]:
    """Every table a service makes in an empty database: its own, and its read model's."""
    views: Any = {
        "intake": IntakeViews,
        "coordination": CoordinationViews,
        "plans": PlansViews,
        "followup": FollowupViews,
    }[service]
    tables = (*views.tables, ERASED)
    counts = [t.counts for t in tables if t.counts is not None]  # a list's totals
    return {f"{service}_{t}" for t in OWN_TABLES} | {
        f"{service}_v1_{t.name}" for t in (*tables, *counts)
    }


@contextmanager
def empty_database(server: str) -> Iterator[str]:
    name = f"kring_start_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunparse(urlparse(server)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def all_live(processes: list[ServiceProcess], deadline: float) -> None:
    waiting = list(processes)
    while waiting:
        for process in list(waiting):
            if not process.running:
                log = process.log_path.read_text() if process.log_path else ""
                raise AssertionError(f"{process.name} died at start:\n{log[-3000:]}")
            try:
                if httpx.get(f"{process.url}/health/live", timeout=1).status_code == 200:
                    waiting.remove(process)
            except httpx.TransportError:
                pass
        assert time.monotonic() < deadline, f"not up: {[p.name for p in waiting]}"
        time.sleep(0.05)


def works(replicas: dict[str, list[ServiceProcess]]) -> None:
    """Each replica serves, and the two replicas of a service share one store."""
    first, second = replicas["intake"]
    created = httpx.post(f"{first.url}/cases", json=REQUEST_BODY, headers=headers(), timeout=10)
    assert created.status_code == 201, created.text
    case_id = created.json()["case_id"]
    read = httpx.get(f"{second.url}/cases/{case_id}", headers=headers(), timeout=10)
    assert read.status_code == 200 and read.json()["region"] == REQUEST_BODY["region"]

    first, second = replicas["coordination"]
    coordinator = f"c-{uuid.uuid4().hex[:8]}"
    registered = httpx.post(
        f"{first.url}/coordinators",
        json={"coordinator_id": coordinator, "regions": ["Utrecht"], "languages": ["nl"]},
        headers=headers("rm", "regional_manager"),
        timeout=10,
    )
    assert registered.status_code in (200, 201), registered.text
    pool = httpx.get(f"{second.url}/coordinators", headers=headers(), timeout=10).json()["items"]
    assert coordinator in [c["coordinator_id"] for c in pool]

    for name in ("plans", "followup"):
        for process in replicas[name]:
            response = httpx.get(f"{process.url}/cases", headers=headers(), timeout=10)
            assert response.status_code == 200, response.text


def schema_objects(url: str) -> tuple[set[str], set[str]]:
    with psycopg.connect(url) as connection:
        tables = {
            name
            for (name,) in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
        functions = {
            name
            for (name,) in connection.execute(
                "SELECT routine_name FROM information_schema.routines "
                "WHERE routine_schema = 'public'"
            )
        }
    return tables, functions


@pytest.mark.timeout(60 + ROUNDS * 60)  # a round takes 10 to 30 s on two busy cores
def test_eight_processes_started_at_once_on_an_empty_database_all_come_up_and_work(
    postgres: str, own_nats: NatsServer, tmp_path: Path
) -> None:
    timings = []
    for number in range(ROUNDS):
        with empty_database(postgres) as url:
            replicas = {
                name: [
                    ServiceProcess(
                        name,
                        own_nats,
                        tmp_path / f"round-{number}-{name}-{replica}",
                        log_path=tmp_path / f"round-{number}-{name}-{replica}.log",
                        KRING_STORE="postgres",
                        KRING_POSTGRES_URL=url,
                    )
                    for replica in range(REPLICAS)
                ]
                for name in SERVICES
            }
            processes = [p for group in replicas.values() for p in group]
            started = time.monotonic()
            try:
                for process in processes:  # all at once: nobody waits for anybody
                    process.start(wait=False)
                all_live(processes, started + UP_SECONDS)
                timings.append(time.monotonic() - started)
                works(replicas)
                assert all(p.running for p in processes)
            finally:
                for process in processes:
                    process.stop()
            tables, functions = schema_objects(url)
            assert tables == {t for s in SERVICES for t in own_tables(s)}
            assert functions == set()  # eventsourcing's shared insert function is not made
    print(
        f"\n{ROUNDS} rounds of {len(SERVICES) * REPLICAS} processes at once: all up in "
        + ", ".join(f"{t:.1f}" for t in timings)
        + f" s (median {sorted(timings)[len(timings) // 2]:.1f} s)"
    )


def open_at_one_instant(url: str) -> tuple[list[KringApplication], list[str]]:
    """Two stores of each service opened by threads that a barrier lets go together."""
    barrier = threading.Barrier(len(APPLICATIONS) * REPLICAS)
    failures: list[str] = []
    opened: list[KringApplication] = []

    def open_store(cls: type[KringApplication]) -> None:
        settings = ServiceSettings(
            service_name=cls.name, store=StoreKind.POSTGRES, postgres_url=SecretStr(url)
        )
        env = eventsourcing_env(settings)
        barrier.wait()
        try:
            opened.append(cls(env=env))
        except Exception as error:
            failures.append(f"{cls.name}: {type(error).__name__}: {str(error)[:120]}")

    threads = [
        threading.Thread(target=open_store, args=(cls,))
        for cls in APPLICATIONS
        for _ in range(REPLICAS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return opened, failures


@pytest.mark.timeout(60 + OPEN_ROUNDS * 10)
def test_eight_stores_opened_at_one_instant_on_an_empty_database_all_open(postgres: str) -> None:
    durations = []
    for _ in range(OPEN_ROUNDS):
        with empty_database(postgres) as url:
            started = time.monotonic()
            opened, failures = open_at_one_instant(url)
            durations.append(time.monotonic() - started)
            for app in opened:
                app.close()
            assert failures == []
            assert len(opened) == len(APPLICATIONS) * REPLICAS
            tables, functions = schema_objects(url)
            assert tables == {t for cls in APPLICATIONS for t in own_tables(cls.name)}
            assert functions == set()
    print(
        f"\n{OPEN_ROUNDS} rounds of {len(APPLICATIONS) * REPLICAS} stores opened at one instant:"
        f" longest {max(durations):.2f} s, median {sorted(durations)[len(durations) // 2]:.2f} s"
    )
