"""The read models on PostgreSQL: every table named after its service, a rebuilt model equal to
the live one, a restart that reads nothing again, and two replicas on one database that see each
other's writes and erasures at once and catch up together applying each event once."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest
from pydantic import SecretStr

from bench.history_seed import SeedClock, Seeder
from services.coordination.app import CoordinationApplication
from services.followup.app import FollowupApplication
from services.intake.app import IntakeApplication
from services.plans.app import PlansApplication
from shared.application import KringApplication
from shared.cipher import AESGCMCipher
from shared.erasure import CaseErasedError, ErasureReason
from shared.settings import ServiceSettings, StoreKind
from shared.store import eventsourcing_env
from tests.factories import REQUEST_BODY, principal
from tests.unit.test_partners_rules import deliveries_survive_a_restart_and_a_rebuild

APPS: dict[str, type[KringApplication]] = {
    "intake": IntakeApplication,
    "coordination": CoordinationApplication,
    "plans": PlansApplication,
    "followup": FollowupApplication,
}
KEYS = {name: AESGCMCipher.create_key(32) for name in APPS}
MANAGER = principal("rm", "regional_manager")


@pytest.fixture(scope="module")
def database(postgres: str) -> Iterator[str]:
    name = f"kring_views_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield urlunparse(urlparse(postgres)._replace(path=f"/{name}"))
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Stores:
    def __init__(self, url: str) -> None:
        self.url = url
        self.clock = SeedClock()
        self.opened: list[KringApplication] = []

    def open(self, name: str) -> Any:
        settings = ServiceSettings(
            service_name=name,
            store=StoreKind.POSTGRES,
            postgres_url=SecretStr(self.url),
            oidc_issuer="http://issuer.invalid",
            cipher_key=SecretStr(KEYS[name]),
        )
        app = APPS[name](env=eventsourcing_env(settings), clock=self.clock)  # type: ignore[call-arg]
        self.opened.append(app)
        return app

    def close(self) -> None:
        for app in self.opened:
            app.close()
        self.opened = []


@pytest.fixture(scope="module")
def seeded(database: str) -> Iterator[Stores]:
    stores = Stores(database)
    apps = {name: stores.open(name) for name in APPS}
    # Ten cases a save: a save of thirty cases' events (several MB in one INSERT) sometimes
    # hangs in psycopg's pipeline sync, the server waiting for the client (psycopg#685's kind).
    Seeder(**apps, clock=stores.clock, seed=5, batch=10, every_fate=True).seed(60)
    stores.close()
    yield stores
    stores.close()


@pytest.fixture
def stores(seeded: Stores) -> Iterator[Stores]:
    yield seeded
    seeded.close()


def test_every_read_model_table_is_named_after_its_service(stores: Stores) -> None:
    for name in APPS:
        stores.open(name)
    with psycopg.connect(stores.url) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
    views = [t for t in tables if "_v" in t and "_views" not in t]
    assert views and all(t.split("_v", 1)[0] in APPS for t in views)
    assert {f"{name}_views" for name in APPS} <= set(tables)
    assert {f"{name}_snapshots" for name in APPS} <= set(tables)


@pytest.mark.parametrize("service", list(APPS))
def test_a_rebuilt_model_equals_the_live_one_and_a_restart_resumes(
    stores: Stores, service: str
) -> None:
    app = stores.open(service)
    app.views.catch_up()
    live = app.views.dump()
    assert sum(len(rows) for rows in live.values()) > 0
    app.views.rebuild()
    assert app.views.dump() == live
    stores.close()
    restarted = stores.open(service)
    assert restarted.views.catch_up() == 0
    assert restarted.views.notifications_read == 0
    assert restarted.views.dump() == live


def test_two_replicas_see_each_others_writes_and_erasures_at_once(stores: Stores) -> None:
    one, two = stores.open("intake"), stores.open("intake")
    case_id = one.submit(principal("ria", "requester"), None, **REQUEST_BODY)
    assert case_id in [r["case_id"] for r in two.views.cases(MANAGER)]
    assert one.read(case_id, MANAGER).id == two.read(case_id, MANAGER).id
    two.erase_case(case_id, ErasureReason.REQUESTED_BY_PERSON, principal("op", "operator"))
    with pytest.raises(CaseErasedError):
        one.read(case_id, MANAGER)
    assert case_id not in [r["case_id"] for r in one.views.cases(MANAGER)]
    [entry] = one.history(case_id)
    assert entry.type == "CaseErased"


def test_two_replicas_catching_up_at_once_apply_each_event_once(stores: Stores) -> None:
    reference = stores.open("followup")
    reference.views.catch_up()
    expected = reference.views.dump()
    one, two = stores.open("followup"), stores.open("followup")
    views = one.views
    generation = views._meta(views.live_name).generation
    with views._writing() as cursor:
        for table in views._tables:
            cursor.execute(f'DELETE FROM "{views.table_name(generation, table)}"')
        cursor.execute(
            f'UPDATE "{views.meta_table}" SET position = 0 WHERE name = %s', (views.live_name,)
        )
    for each in (one.views, two.views):
        each.batch_size = 40
    errors: list[BaseException] = []

    def catch_up(each: Any) -> None:
        try:
            each.catch_up()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=catch_up, args=(v,)) for v in (one.views, two.views)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert one.views.dump() == two.views.dump() == expected


def test_partners_deliveries_resume_and_rebuild_on_postgres(database: str) -> None:
    key = AESGCMCipher.create_key(32)
    opened: list[KringApplication] = []

    def make(cls: type[KringApplication], **kwargs: Any) -> Any:
        settings = ServiceSettings(
            service_name=cls.name,
            store=StoreKind.POSTGRES,
            postgres_url=SecretStr(database),
            oidc_issuer="http://issuer.invalid",
            cipher_key=SecretStr(key),
        )
        app = cls(env=eventsourcing_env(settings), **kwargs)
        opened.append(app)
        return app

    try:
        deliveries_survive_a_restart_and_a_rebuild(make)
    finally:
        for app in opened:
            app.close()
