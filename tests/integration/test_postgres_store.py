"""The PostgreSQL store, against a real server: events, exact tracking, relay checkpoint, each
service's tables and case keys its own, the shared tables of an earlier release taken over, the
service key checked at start."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest
from pydantic import SecretStr

from services.coordination.app import CoordinationApplication
from services.intake.app import IntakeApplication
from shared.at_rest import StoreKeyError
from shared.cipher import AESGCMCipher
from shared.erasure import CaseErasedError, ErasureReason
from shared.events import CaseErased
from shared.settings import ServiceSettings, StoreKind
from shared.store import eventsourcing_env
from tests.factories import (
    CLARIFICATION,
    NOW,
    REGIONS,
    REQUEST_BODY,
    delivered,
    principal,
    request_received,
)

MANAGER = principal("rm", "regional_manager", regions=REGIONS)


@pytest.fixture
def database(postgres: str) -> Iterator[str]:
    """A fresh database per test on the session's server."""
    name = f"kring_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = urlparse(postgres)
    yield urlunparse(url._replace(path=f"/{name}"))
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def settings(name: str, url: str, key: str | None = None) -> ServiceSettings:
    return ServiceSettings(
        service_name=name,
        store=StoreKind.POSTGRES,
        postgres_url=SecretStr(url),
        cipher_key=None if key is None else SecretStr(key),
    )


def query(url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return list(connection.execute(sql, params).fetchall())


def case_key(url: str, service: str, case_id: uuid.UUID) -> str | None:
    [(key,)] = query(url, f"SELECT key FROM {service}_case_keys WHERE case_id = %s", str(case_id))
    return key  # type: ignore[no-any-return]


def test_commands_and_history_on_postgres(database: str) -> None:
    app = IntakeApplication(env=eventsourcing_env(settings("intake", database)))
    try:
        case_id = app.submit(MANAGER, **REQUEST_BODY, informational_talk=False)
        app.clarify(case_id, MANAGER, **CLARIFICATION)
        app.accept(case_id, MANAGER)
        assert [e.type for e in app.history(case_id)] == ["Submitted", "Clarified", "Accepted"]
        assert app.queries.checkpoint("intake") == 0
        app.queries.save_checkpoint("intake", 2)
        app.queries.save_checkpoint("intake", 5)
        assert app.queries.checkpoint("intake") == 5
    finally:
        app.close()


def test_a_case_is_erased_on_postgres_and_stays_erased_after_a_restart(database: str) -> None:
    config = eventsourcing_env(settings("intake", database))
    app = IntakeApplication(env=config)
    try:
        kept = app.submit(MANAGER, **REQUEST_BODY, informational_talk=False)
        erased = app.submit(MANAGER, **REQUEST_BODY, informational_talk=False)
        app.erase_case(erased, ErasureReason.RETENTION_ENDED, MANAGER)
    finally:
        app.close()
    again = IntakeApplication(env=config)
    try:
        with pytest.raises(CaseErasedError):
            again.get(erased)
        assert again.get(kept).region == REQUEST_BODY["region"]
        assert [e.type for e in again.history(erased)] == ["CaseErased"]
    finally:
        again.close()


def test_exact_tracking_on_postgres_in_any_order_and_across_restarts(database: str) -> None:
    config = eventsourcing_env(settings("coordination", database))
    app = CoordinationApplication(env=config)
    try:
        app.register_coordinator("c1", ["Utrecht"], ["nl"], 9, MANAGER)
        later, earlier = delivered(request_received(), 7), delivered(request_received(), 3)
        assert app.process(later) is True
        assert app.process(earlier) is True
        assert app.process(later) is False
    finally:
        app.close()
    again = CoordinationApplication(env=config)
    try:
        assert again.process(earlier) is False
        assert again.pool().load["c1"] == 2
    finally:
        again.close()


def test_a_bad_postgres_url_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="postgresql://"):
        eventsourcing_env(settings("intake", "mysql://somewhere/db"))


def test_each_service_keeps_its_own_case_keys_on_postgres(database: str) -> None:
    intake = IntakeApplication(env=eventsourcing_env(settings("intake", database)))
    coordination = CoordinationApplication(
        env=eventsourcing_env(settings("coordination", database))
    )
    try:
        case_id = intake.submit(MANAGER, **REQUEST_BODY, informational_talk=False)
        coordination.process(delivered(request_received(case_id), 1))
        [(intakes,)] = query(
            database, "SELECT key FROM intake_case_keys WHERE case_id = %s", str(case_id)
        )
        [(coordinations,)] = query(
            database, "SELECT key FROM coordination_case_keys WHERE case_id = %s", str(case_id)
        )
        assert intakes and coordinations and intakes != coordinations

        intake.erase_case(case_id, ErasureReason.OTHER, MANAGER)
        # Intake's shredding reaches intake's key only; coordination shreds its own when it
        # hears of the erasure.
        assert coordination.get(case_id).id == case_id
        erased = CaseErased(case_id=case_id, model="family", reason="other", erased_at=NOW)
        coordination.process(delivered(erased, 2))
        assert case_key(database, "intake", case_id) is None
        assert case_key(database, "coordination", case_id) is None
    finally:
        intake.close()
        coordination.close()


def test_the_shared_tables_of_an_earlier_release_are_taken_over_on_postgres(
    database: str,
) -> None:
    key = AESGCMCipher.create_key()  # an earlier deployment gave every service the same key
    intake = IntakeApplication(env=eventsourcing_env(settings("intake", database, key)))
    case_id = intake.submit(MANAGER, **REQUEST_BODY, informational_talk=False)
    intake.queries.save_checkpoint("intake", 4)
    intake.close()
    with psycopg.connect(database) as connection:  # the layout of that release
        connection.execute("ALTER TABLE intake_case_keys RENAME TO kring_case_keys")
        connection.execute("ALTER TABLE intake_relay RENAME TO kring_relay")
        connection.execute("INSERT INTO kring_relay VALUES ('coordination', 9)")
        connection.execute("DROP TABLE intake_store")

    again = IntakeApplication(env=eventsourcing_env(settings("intake", database, key)))
    coordination = CoordinationApplication(
        env=eventsourcing_env(settings("coordination", database, key))
    )
    try:
        assert again.get(case_id).region == REQUEST_BODY["region"]
        assert again.queries.checkpoint("intake") == 4
        assert coordination.queries.checkpoint("coordination") == 9
        assert coordination.queries.checkpoint("intake") == 0  # only its own row
        copied = query(
            database, "SELECT key FROM coordination_case_keys WHERE case_id = %s", str(case_id)
        )
        assert copied == query(
            database, "SELECT key FROM intake_case_keys WHERE case_id = %s", str(case_id)
        )
    finally:
        again.close()
        coordination.close()
    # The shared tables stay, for the operator to drop once every service has started.
    assert query(database, "SELECT count(*) FROM kring_case_keys") == [(1,)]


def test_a_postgres_store_opens_only_with_the_key_it_was_written_with(database: str) -> None:
    key = AESGCMCipher.create_key()
    IntakeApplication(env=eventsourcing_env(settings("intake", database, key))).close()
    with pytest.raises(StoreKeyError, match="written with another key"):
        IntakeApplication(
            env=eventsourcing_env(settings("intake", database, AESGCMCipher.create_key()))
        )
    with pytest.raises(StoreKeyError, match="KRING_CIPHER_KEY is not set"):
        IntakeApplication(env=eventsourcing_env(settings("intake", database)))
