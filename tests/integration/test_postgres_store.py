"""The PostgreSQL store, against a real server: events, exact tracking, relay checkpoint."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest
from pydantic import SecretStr

from services.coordination.app import CoordinationApplication
from services.intake.app import IntakeApplication
from shared.erasure import CaseErasedError, ErasureReason
from shared.settings import ServiceSettings, StoreKind
from shared.store import eventsourcing_env
from tests.factories import (
    CLARIFICATION,
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


def settings(name: str, url: str) -> ServiceSettings:
    return ServiceSettings(service_name=name, store=StoreKind.POSTGRES, postgres_url=SecretStr(url))


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
