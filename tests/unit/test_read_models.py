"""The read models (``shared.views``, each service's ``views.py``) on real SQLite stores: a
history of cases of every model and stage, written through the services' own commands and
policies (``bench.history_seed``), then rebuilt, restarted, interrupted, and read by two
application instances on one database."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, UUIDAsHex

from bench.history_seed import REGIONS, SeedClock, Seeder
from services.coordination.app import CASE_SNAPSHOT_EVENTS, CoordinationApplication
from services.coordination.domain import CoordinatedCase, Stage
from services.coordination.pool import POOL_ID
from services.followup.app import FollowupApplication
from services.intake.app import IntakeApplication
from services.plans.app import PlansApplication
from shared.application import DateAsISO, KringApplication, mutate_all
from shared.cipher import AESGCMCipher
from shared.erasure import CaseErasedError, ErasureLog, ErasureReason
from shared.settings import ServiceSettings
from shared.snapshots import KringSnapshot
from shared.store import eventsourcing_env
from shared.views import Progress
from tests.factories import REQUEST_BODY, principal

APPS: dict[str, type[KringApplication]] = {
    "intake": IntakeApplication,
    "coordination": CoordinationApplication,
    "plans": PlansApplication,
    "followup": FollowupApplication,
}
KEYS = {name: AESGCMCipher.create_key(32) for name in APPS}
OPERATOR = principal("op", "operator")
RESEARCHER = principal("r1", "researcher")


class Stores:
    """The four services' stores in one folder, opened and reopened (a restart)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.clock = SeedClock()
        self.opened: list[KringApplication] = []

    def open(self, name: str) -> Any:
        from pydantic import SecretStr

        settings = ServiceSettings(
            service_name=name,
            data_dir=self.folder,
            oidc_issuer="http://issuer.invalid",
            cipher_key=SecretStr(KEYS[name]),
        )
        app = APPS[name](env=eventsourcing_env(settings), clock=self.clock)  # type: ignore[call-arg]
        self.opened.append(app)
        return app

    def all(self) -> dict[str, Any]:
        return {name: self.open(name) for name in APPS}

    def close(self) -> None:
        for app in self.opened:
            app.close()
        self.opened = []


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stores, Any]]:
    """Eighty cases of every model and stage (some erased, some followed by a follow-up
    conference) in the four stores, seeded once for the module."""
    stores = Stores(tmp_path_factory.mktemp("history"))
    apps = stores.all()
    seeded = Seeder(**apps, clock=stores.clock, seed=3, batch=40, every_fate=True).seed(80)
    stores.close()
    yield stores, seeded
    stores.close()


@pytest.fixture
def stores(history: tuple[Stores, Any]) -> Iterator[Stores]:
    yield history[0]
    history[0].close()


def test_the_history_has_every_stage_and_erasures(history: tuple[Stores, Any]) -> None:
    stores, seeded = history
    assert seeded.erased and sum(seeded.by_fate.values()) == 80
    intake = stores.open("intake")
    rows = intake.views.cases(principal("rm", "regional_manager", regions=REGIONS))
    assert {r["stage"] for r in rows} >= {"submitted", "clarified", "accepted", "withdrawn"}
    assert not {r["case_id"] for r in rows} & set(seeded.erased)
    followup = stores.open("followup")
    stages = {r["stage"] for r in followup.views.cases(RESEARCHER)}
    assert stages == {"follow_up_scheduled", "follow_up_due", "followed_up"}


@pytest.mark.parametrize("service", list(APPS))
def test_a_rebuilt_read_model_equals_the_live_one_row_for_row(stores: Stores, service: str) -> None:
    app = stores.open(service)
    live = app.views.dump()
    assert sum(len(rows) for rows in live.values()) > 80
    generation = app.views._meta(app.views.live_name).generation
    done = app.views.rebuild()
    assert done.position == app.recorder.max_notification_id()
    assert app.views.dump() == live
    assert app.views._meta(app.views.live_name).generation > generation
    # The tables it replaced are gone.
    assert _tables(stores.folder / f"{service}.sqlite", f"{service}_v{generation}_") == []


@pytest.mark.parametrize("service", list(APPS))
def test_a_restart_resumes_the_read_model_where_it_was(stores: Stores, service: str) -> None:
    before = stores.open(service)
    before.views.catch_up()
    rows = before.views.dump()
    stores.close()
    restarted = stores.open(service)
    # Nothing of the log is read again: the model resumes at its position, which is the end.
    assert restarted.views.catch_up() == 0
    assert restarted.views.notifications_read == 0
    assert restarted.views.dump() == rows
    if service == "intake":
        # One new request: exactly its one notification is read.
        restarted.submit(principal("ria", "requester"), None, **REQUEST_BODY)
        assert restarted.views.catch_up() == 1
        assert restarted.views.notifications_read == 1


def test_an_interrupted_rebuild_resumes_and_ends_with_the_same_rows(stores: Stores) -> None:
    app = stores.open("coordination")
    live = app.views.dump()
    app.views.batch_size = 100  # several batches
    seen: list[Progress] = []

    def interrupt(progress: Progress) -> None:
        seen.append(progress)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        app.views.rebuild(interrupt)
    stopped_at = seen[-1].position
    assert 0 < stopped_at < app.recorder.max_notification_id()
    stores.close()

    again = stores.open("coordination")
    again.views.batch_size = 100
    resumed: list[Progress] = []
    again.views.rebuild(resumed.append)
    # It went on from where it stopped, not from the first notification.
    assert resumed[0].position == stopped_at + again.views.batch_size
    assert again.views.dump() == live


def test_two_replicas_on_one_database_see_each_others_writes_and_erasures(
    tmp_path: Path,
) -> None:
    stores = Stores(tmp_path)
    try:
        one, two = stores.open("intake"), stores.open("intake")
        manager = principal("rm", "regional_manager")
        case_id = one.submit(principal("ria", "requester"), None, **REQUEST_BODY)
        # The other replica's list has it at once (read-your-writes across replicas).
        assert [r["case_id"] for r in two.views.cases(manager)] == [case_id]
        # Both have read the case (and keep its key in their caches).
        assert one.read(case_id, manager).id == two.read(case_id, manager).id == case_id
        two.erase_case(case_id, ErasureReason.REQUESTED_BY_PERSON, OPERATOR)
        # Through the other replica it is unreadable at once, and gone from the list.
        with pytest.raises(CaseErasedError):
            one.read(case_id, manager)
        assert one.views.cases(manager) == []
        [entry] = one.history(case_id)
        assert entry.type == "CaseErased"
    finally:
        stores.close()


def test_two_replicas_catching_up_at_once_apply_each_event_once(stores: Stores) -> None:
    rebuilt = stores.open("followup")
    rebuilt.views.rebuild()
    expected = rebuilt.views.dump()
    # Two replicas whose read model is far behind (as after a start on a fresh table set).
    one, two = stores.open("followup"), stores.open("followup")
    _reset_position(one)
    for views in (one.views, two.views):
        views.batch_size = 50
    errors: list[BaseException] = []

    def catch_up(views: Any) -> None:
        try:
            views.catch_up()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=catch_up, args=(v,)) for v in (one.views, two.views)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # Counts (outcomes per follow-up) would show an event applied twice.
    assert two.views.dump() == one.views.dump() == expected
    read = one.views.notifications_read + two.views.notifications_read
    assert read >= rebuilt.recorder.max_notification_id()


def _reset_position(app: Any) -> None:
    """Empty the live tables and put the position back to the start: a model far behind."""
    views = app.views
    generation = views._meta(views.live_name).generation
    with views._writing() as cursor:
        for table in views._tables:
            cursor.execute(f"DELETE FROM {views.table_name(generation, table)}")
        cursor.execute(
            f"UPDATE {views.meta_table} SET position = 0 WHERE name = ?", (views.live_name,)
        )


def _tables(database: Path, prefix: str) -> list[str]:
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ?", (f"{prefix}%",)
        ).fetchall()
    return [r[0] for r in rows]


def test_cases_and_the_pool_load_from_snapshots_equal_to_their_whole_history(
    stores: Stores, history: tuple[Stores, Any]
) -> None:
    app = stores.open("coordination")
    long_cases = [
        row["case_id"]
        for row in app.views.cases()
        if len(list(app.recorder.select_events(row["case_id"]))) > CASE_SNAPSHOT_EVENTS
    ]
    assert long_cases
    for aggregate_id in [*long_cases[:10], POOL_ID]:
        assert list(app.snapshots.get(aggregate_id, desc=True, limit=1))
        loaded = app.repository.get(aggregate_id)  # from its latest snapshot
        replayed = mutate_all(None, app.events.get(aggregate_id))
        assert vars(loaded) == vars(replayed)
        assert type(loaded.stage if aggregate_id != POOL_ID else loaded) is type(
            replayed.stage if aggregate_id != POOL_ID else replayed
        )
    # An erased case's snapshots went with its key.
    erased = [c for c in history[1].erased if list(app.snapshots.recorder.select_events(c))]
    assert erased
    with pytest.raises(CaseErasedError):
        list(app.snapshots.get(erased[0]))


def test_a_release_that_changes_an_aggregate_s_attributes_passes_its_old_snapshots_over(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot is of the attributes as the class had them: a class whose ``state_version``
    was raised (a new release) loads from its events instead, and its next snapshot (at its
    next interval) is taken under the new version."""
    app = stores.open("coordination")
    case_id = next(
        row["case_id"]
        for row in app.views.cases()
        if len(list(app.recorder.select_events(row["case_id"]))) > CASE_SNAPSHOT_EVENTS
    )
    reading = app.repository.snapshot_store
    assert reading is not None and list(reading.get(case_id, desc=True, limit=1))
    monkeypatch.setattr(CoordinatedCase, "state_version", 2, raising=False)
    assert list(app.snapshots.get(case_id, desc=True, limit=1))  # still stored
    assert list(reading.get(case_id, desc=True, limit=1)) == []  # but not read
    loaded = app.repository.get(case_id)
    assert vars(loaded) == vars(mutate_all(None, app.events.get(case_id)))
    assert KringSnapshot.take(loaded).current


def test_a_snapshot_keeps_maps_keyed_by_case_and_enum_members() -> None:
    log = ErasureLog(id=uuid.uuid4())
    first, second = uuid.uuid4(), uuid.uuid4()
    for case_id in (first, second):
        log.record(
            case_id=case_id,
            model="family",
            reason="other",
            at=datetime.now(UTC),
            actor={"id": "op", "role": "operator"},
            erased_with=None,
        )
    case = CoordinatedCase.receive(
        uuid.uuid4(),
        model="family",
        region="Utrecht",
        languages=["nl"],
        accepted_at=datetime.now(UTC),
        actor={"id": "coordination", "role": "system"},
    )
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DatetimeAsISO(), DateAsISO()):
        transcoder.register(transcoding)
    for aggregate in (log, case):
        snapshot = KringSnapshot.take(aggregate)
        state = transcoder.decode(transcoder.encode(snapshot.state))
        restored = KringSnapshot(
            originator_id=snapshot.originator_id,
            originator_version=snapshot.originator_version,
            timestamp=snapshot.timestamp,
            topic=snapshot.topic,
            state=state,
        ).mutate(None)
        assert vars(restored) == {**vars(aggregate), "_pending_events": []}
    assert restored.stage is Stage.WAITING  # type: ignore[attr-defined]


@pytest.mark.parametrize("service", list(APPS))
def test_a_lists_total_from_its_counts_is_the_number_of_its_rows(
    stores: Stores, service: str
) -> None:
    from shared.views import PageRequest

    app = stores.open(service)
    readers = [
        principal("rm", "regional_manager", regions=REGIONS),
        principal("rm-u", "regional_manager", regions=("Utrecht",)),
    ]
    if service == "followup":
        readers.append(principal("r", "researcher"))
    stages = {row["stage"] for row in app.views.cases(readers[0])}
    assert stages
    for reader in readers:
        for filters in ({}, {"stage": sorted(stages)[0]}, {"model": "group"}):
            rows = app.views.cases(reader, **filters)
            page = app.views.cases_page(reader, PageRequest(limit=5), **filters)
            assert page.total == len(rows), (reader.subject, filters)
            assert page.items == rows[:5]


def test_a_plan_loads_from_a_snapshot_equal_to_its_whole_history(stores: Stores) -> None:
    app = stores.open("plans")
    rows = app.views.cases(principal("rm", "regional_manager", regions=REGIONS))
    long_plans = [
        r["case_id"] for r in rows if len(list(app.recorder.select_events(r["case_id"]))) > 10
    ]
    assert long_plans
    for case_id in long_plans[:10]:
        assert list(app.snapshots.get(case_id, desc=True, limit=1))
        loaded = app.repository.get(case_id)
        replayed = mutate_all(None, app.events.get(case_id))
        assert vars(loaded) == vars(replayed)
        assert loaded.stage is replayed.stage
