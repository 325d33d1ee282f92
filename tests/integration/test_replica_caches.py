"""Two replicas of a service on one PostgreSQL store (two applications, as two processes have):
what one keeps in memory never shows the other's writes stale. Checked here: coordination's
coordinator pool (kept in memory, brought up to date from the store on each read), the case
lists (projections caught up from the store before each read), and what an erasure through one
replica leaves readable through the other."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from services.coordination.app import CoordinationApplication
from services.intake.app import IntakeApplication
from shared.erasure import CaseErasedError, ErasureReason
from shared.errors import CaseNotFoundError
from shared.settings import ServiceSettings, StoreKind
from shared.store import eventsourcing_env
from tests.factories import REGIONS, REQUEST_BODY, principal
from tests.servers import fresh_database

MANAGER = principal("rm", "regional_manager", regions=REGIONS)


def two(cls: type[Any], url: str) -> tuple[Any, Any]:
    settings = ServiceSettings(
        service_name=cls.name, store=StoreKind.POSTGRES, postgres_url=SecretStr(url)
    )
    return cls(env=eventsourcing_env(settings)), cls(env=eventsourcing_env(settings))


@pytest.fixture
def url(postgres: str) -> Iterator[str]:
    with fresh_database(postgres) as database:
        yield database


def test_a_coordinator_registered_through_one_replica_is_in_the_others_pool_at_once(
    url: str,
) -> None:
    first, second = two(CoordinationApplication, url)
    try:
        assert second.pool().coordinators == {}  # read once: the second keeps it in memory
        first.register_coordinator("c1", ["Utrecht"], ["nl"], 3, MANAGER)
        assert list(second.pool().coordinators) == ["c1"]
        # And the second's own change builds on it, not on what it had read before.
        second.register_coordinator("c2", ["Utrecht"], ["nl"], 3, MANAGER)
        assert sorted(first.pool().coordinators) == ["c1", "c2"]
    finally:
        first.close()
        second.close()


def test_a_case_submitted_or_erased_through_one_replica_shows_so_in_the_others_list(
    url: str,
) -> None:
    first, second = two(IntakeApplication, url)
    try:
        assert second.views.cases(MANAGER) == []
        case_id = first.submit(MANAGER, **REQUEST_BODY, informational_talk=False)
        assert [row["case_id"] for row in second.views.cases(MANAGER)] == [case_id]
        first.erase_case(case_id, next(iter(ErasureReason)), MANAGER)
        assert second.views.cases(MANAGER) == []
    finally:
        first.close()
        second.close()


def test_a_case_erased_through_one_replica_is_unreadable_through_the_other_at_once(
    url: str,
) -> None:
    first, second = two(IntakeApplication, url)
    try:
        case_id = first.submit(MANAGER, **REQUEST_BODY, informational_talk=False)
        assert second.read(case_id, MANAGER).id == case_id  # the second has its key in memory
        first.erase_case(case_id, next(iter(ErasureReason)), MANAGER)
        with pytest.raises((CaseErasedError, CaseNotFoundError)):
            second.get(case_id)
    finally:
        first.close()
        second.close()
