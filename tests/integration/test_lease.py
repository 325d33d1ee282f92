"""The lease of the active replica, on a real PostgreSQL: one term at a time by the database's
clock; a write made for a term that lost the lease is refused with nothing stored; a takeover
waits for a write in flight instead of passing it; a lease given up is taken at once; SQLite's
single process holds its lease for good and writes nothing for it."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from services.intake.app import IntakeApplication
from services.intake.bootstrap import build
from services.intake.settings import IntakeSettings
from shared import fence
from shared.lease import PostgresLease, SoleLease
from shared.settings import StoreKind
from shared.store import eventsourcing_env
from tests.factories import REGIONS, REQUEST_BODY, principal
from tests.harness import eventually, running
from tests.servers import NatsServer, fresh_database

MANAGER = principal("rm", "regional_manager", regions=REGIONS)
SECONDS = 2.0


@pytest.fixture
def app(postgres: str) -> Iterator[IntakeApplication]:
    with fresh_database(postgres) as url:
        settings = IntakeSettings(store=StoreKind.POSTGRES, postgres_url=SecretStr(url))
        app = IntakeApplication(env=eventsourcing_env(settings))
        yield app
        app.close()


def lease(app: IntakeApplication, holder: str) -> PostgresLease:
    return PostgresLease(app.queries, seconds=SECONDS, holder=holder)


def fenced() -> float:
    return REGISTRY.get_sample_value("kring_lease_fenced_total") or 0.0


def submitted(app: IntakeApplication) -> int:
    return app.recorder.max_notification_id() or 0


async def test_one_term_at_a_time_by_the_databases_clock(app: IntakeApplication) -> None:
    first, second = lease(app, "replica-1"), lease(app, "replica-2")
    term = await first.acquire()
    assert term is not None and term.valid()
    assert await second.acquire() is None
    assert await first.renew(term)
    assert first.holding() == {"holder": "replica-1", "epoch": 1, "live": True}

    # Unrenewed, it runs out on the holder's clock before the database lets the other in.
    deadline = time.monotonic() + SECONDS + 1
    while term.valid():
        assert await second.acquire() is None
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    taken = await _taken(second)
    assert second.holding() == {"holder": "replica-2", "epoch": 2, "live": True}
    assert taken.valid()
    assert not await first.renew(term)  # it is the other's now
    assert not term.valid()


async def test_a_write_of_a_term_that_lost_the_lease_is_refused_and_stores_nothing(
    app: IntakeApplication,
) -> None:
    first, second = lease(app, "replica-1"), lease(app, "replica-2")
    old = await first.acquire()
    assert old is not None
    with fence.within(old):
        app.submit(MANAGER, **REQUEST_BODY, informational_talk=False)
        app.queries.save_checkpoint("intake", 1)
    before, refused = submitted(app), fenced()

    await _taken(second)
    # The old holder woke from a pause and carried on where it was: every write refused.
    with fence.within(old):
        with pytest.raises(fence.LeaseLostError):
            app.submit(MANAGER, **REQUEST_BODY, informational_talk=False)
        with pytest.raises(fence.LeaseLostError):
            await asyncio.to_thread(app.queries.save_checkpoint, "intake", 99)  # in a thread too
        assert not fence.still_held()
    assert submitted(app) == before
    assert app.queries.checkpoint("intake") == 1
    assert fenced() == refused + 2
    # Outside any term (an HTTP command) nothing is asked.
    app.submit(MANAGER, **REQUEST_BODY, informational_talk=False)
    assert submitted(app) > before


async def test_a_takeover_waits_for_a_write_in_flight_rather_than_pass_it(
    app: IntakeApplication,
) -> None:
    first, second = lease(app, "replica-1"), lease(app, "replica-2")
    term = await first.acquire()
    assert term is not None
    # A write of the holder's term that has checked the fence and not yet committed: the row
    # is the write's until it ends, so the other replica cannot take the lease meanwhile.
    # Ended by the server, it never commits.
    ended = pytest.raises(Exception, match="transaction timeout")
    with ended, app.queries.transaction(commit=True) as cursor:
        term.check(cursor)
        with pytest.raises(Exception, match="lock"):
            await second.acquire()
        # Stopped past the lease (paused, say): a write may not outlast it, so the server ends
        # the session rather than let it hold the row, and the lease, for good.
        await asyncio.sleep(SECONDS + 0.5)
        cursor.execute(app.queries.sql("SELECT 1"))
    # Ended without a commit, and only then the other term begins.
    assert await second.acquire() is not None


async def test_a_lease_given_up_is_taken_at_once(app: IntakeApplication) -> None:
    first, second = lease(app, "replica-1"), lease(app, "replica-2")
    term = await first.acquire()
    assert term is not None
    await first.release(term)
    assert not term.valid()
    assert await second.acquire() is not None


async def test_a_sqlite_service_holds_its_lease_at_once_and_writes_nothing_for_it(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    definition = build(IntakeSettings(**nats_server.settings("intake"), data_dir=tmp_path))
    async with running(definition) as intake:
        assert isinstance(intake.service.leader.lease, SoleLease)
        await intake.service.bus.wait_started()
        assert intake.service.leader.active
    with contextlib.closing(sqlite3.connect(tmp_path / "intake.sqlite")) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "intake_lease" not in tables


async def _taken(lease: PostgresLease) -> fence.Term:
    found: list[fence.Term] = []

    async def taken() -> bool:
        term = await lease.acquire()
        if term is not None:
            found.append(term)
        return bool(found)

    await eventually(taken, timeout=SECONDS + 3, what=f"{lease.holder} takes the lease")
    return found[0]
