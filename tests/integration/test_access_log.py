"""The access log (NEN 7513): every read of a case's personal data is recorded before it is
answered — who, in which role, what, when — in the service's own store, without the data and
nothing of the family; the regional manager of the region and an operator read it, nobody else;
it outlives the case's erasure; reads arriving together share commits."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from kring import scenarios
from shared.access_log import AccessLog
from shared.actor import Actor, Role
from shared.events import CaseErased, ConferenceModel
from tests.access_matrix import built
from tests.factories import delivered, headers, request_received
from tests.tokens import bearer

FAMILY = scenarios.SCENARIOS[ConferenceModel.FAMILY]
COORDINATOR = headers("c1", "coordinator")
MANAGER = headers("rm-anna", "regional_manager")
TEXEL = headers("rm-texel", "regional_manager", region="Texel")
OPERATOR = bearer("op-olga", ["operator"])


@pytest.fixture
async def coordination(tmp_path: Path) -> AsyncIterator[tuple[Any, httpx.AsyncClient, str]]:
    definition, running = built("coordination", tmp_path)
    transport = httpx.ASGITransport(app=running.api)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        body = {"coordinator_id": "c1", "regions": ["Utrecht"], "languages": ["nl"]}
        assert (await http.post("/coordinators", json=body, headers=MANAGER)).status_code == 201
        event = request_received()
        definition.app.process(delivered(event, 1))
        for person in FAMILY.people[:3]:
            invited = await http.post(
                f"/cases/{event.case_id}/participants",
                json=scenarios.participant_body(person),
                headers=COORDINATOR,
            )
            assert invited.status_code == 201
        try:
            yield definition.app, http, str(event.case_id)
        finally:
            definition.app.close()


async def test_every_read_is_recorded_with_who_what_and_when_and_nothing_of_the_family(
    coordination: tuple[Any, httpx.AsyncClient, str],
) -> None:
    app, http, case_id = coordination
    started = datetime.now(UTC)
    assert (await http.get(f"/cases/{case_id}", headers=COORDINATOR)).status_code == 200
    assert (await http.get(f"/cases/{case_id}/participants", headers=MANAGER)).status_code == 200
    assert (await http.get(f"/cases/{case_id}/history", headers=MANAGER)).status_code == 200
    # A refused read gave nothing away, so there is no read to record.
    assert (await http.get(f"/cases/{case_id}", headers=TEXEL)).status_code == 403
    # Lists show no personal data: not a read of a case.
    assert (await http.get("/cases", headers=MANAGER)).status_code == 200

    log = await http.get(f"/cases/{case_id}/access-log", headers=MANAGER)
    assert log.status_code == 200, log.text
    entries = log.json()["items"]
    assert [(e["subject"], e["role"], e["what"]) for e in entries] == [
        ("c1", "coordinator", "case"),
        ("rm-anna", "regional_manager", "participants"),
        ("rm-anna", "regional_manager", "history"),
    ]
    assert all(e["service"] == "coordination" and e["case_id"] == case_id for e in entries)
    assert all(started <= datetime.fromisoformat(e["at"]) <= datetime.now(UTC) for e in entries)
    stored = repr(app.access_log.entries(uuid.UUID(case_id)))
    for person in FAMILY.people[:3]:
        assert person.name not in stored and person.name not in log.text
    # Reading the log is no read of the case's personal data: it is not logged itself.
    log = await http.get(f"/cases/{case_id}/access-log", headers=MANAGER)
    assert log.json()["total"] == 3


async def test_the_regional_manager_of_the_region_and_an_operator_read_the_log_nobody_else(
    coordination: tuple[Any, httpx.AsyncClient, str],
) -> None:
    _, http, case_id = coordination
    await http.get(f"/cases/{case_id}", headers=COORDINATOR)
    url = f"/cases/{case_id}/access-log"
    assert (await http.get(url, headers=MANAGER)).status_code == 200
    assert (await http.get(url, headers=OPERATOR)).status_code == 200
    for other in (TEXEL, COORDINATOR, bearer("r", ["researcher"]), {}):
        refused = await http.get(url, headers=other)
        assert refused.status_code in (401, 403), refused.text
    unknown = await http.get(f"/cases/{uuid.uuid4()}/access-log", headers=OPERATOR)
    assert unknown.status_code == 404


async def test_the_log_outlives_the_case_s_erasure(
    coordination: tuple[Any, httpx.AsyncClient, str],
) -> None:
    app, http, case_id = coordination
    await http.get(f"/cases/{case_id}/participants", headers=COORDINATOR)
    erased = CaseErased(
        case_id=uuid.UUID(case_id),
        model="family",
        reason="requested_by_person",
        erased_at=datetime.now(UTC),
    )
    app.process(delivered(erased, 2))
    assert (await http.get(f"/cases/{case_id}", headers=MANAGER)).status_code == 410
    for reader in (MANAGER, OPERATOR):
        log = await http.get(f"/cases/{case_id}/access-log", headers=reader)
        assert log.status_code == 200, log.text
        assert [(e["subject"], e["what"]) for e in log.json()["items"]] == [("c1", "participants")]
    # The region the reads recorded still keeps other regions out.
    assert (await http.get(f"/cases/{case_id}/access-log", headers=TEXEL)).status_code == 403
    status = (await http.get(f"/cases/{case_id}/erasure", headers=OPERATOR)).json()
    assert (status["erased"], status["known"]) == (True, True)


def test_reads_arriving_together_share_commits_and_none_is_lost(tmp_path: Path) -> None:
    definition, _ = built("intake", tmp_path)
    log = AccessLog(definition.app.recorder, "intake")
    case_id = uuid.uuid4()
    readers = 32
    start = threading.Barrier(readers)
    errors: list[BaseException] = []

    def read(n: int) -> None:
        start.wait()
        try:
            actor = Actor(id=f"reader-{n}", role=Role.REGIONAL_MANAGER, name=f"Reader {n}")
            log.record(case_id, actor, "case", "Utrecht", datetime.now(UTC))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=read, args=(n,)) for n in range(readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    entries = log.entries(case_id)
    assert sorted(e.subject for e in entries) == sorted(f"reader-{n}" for n in range(readers))
    assert log.commits < readers  # fewer commits than reads: they were grouped
    definition.app.close()
