"""Nothing lost, nothing twice: services killed with -9 while cases flow, then restarted.

The short form of the fault suite: a few dozen cases, each service killed at least once.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import CLARIFICATION, REQUEST_BODY, headers
from tests.harness import eventually, staff_headers, stream_messages
from tests.servers import NatsServer, ServiceProcess

CASES = 24


@pytest.fixture
def services(own_nats: NatsServer, tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    started = {
        # A short ack wait, so what the killed consumer held is redelivered quickly.
        name: ServiceProcess(name, own_nats, tmp_path, KRING_CONSUMER_ACK_WAIT_SECONDS="1").start()
        for name in ("intake", "coordination")
    }
    yield started
    for service in started.values():
        service.stop()


async def test_killed_services_lose_nothing_and_apply_nothing_twice(
    own_nats: NatsServer, services: dict[str, ServiceProcess]
) -> None:
    intake, coordination = services["intake"], services["coordination"]
    async with httpx.AsyncClient(timeout=10, headers=staff_headers()) as http:
        await _with_pool(http, coordination)

        case_ids: list[str] = []
        for number in range(CASES):
            if number == CASES // 3:
                coordination.kill()  # mid-flow: events keep arriving for it
            if number == CASES // 2:
                coordination.start()
                intake.kill()  # relay and store interrupted
                intake.start()
            case_ids.append(await _submit_and_accept(http, intake.url))
        coordination.kill()
        coordination.start()

        await eventually(
            lambda: _assigned_count_is(own_nats, CASES),
            timeout=60,
            what="every case assigned",
        )
        pool = (await http.get(f"{coordination.url}/coordinators")).json()["items"]
        assert pool[0]["open_cases"] == CASES

    messages = await stream_messages(own_nats)
    ids = Counter(json.loads(m.data)["id"] for m in messages)
    assert [i for i, n in ids.items() if n > 1] == []  # each origin:position once
    subjects = Counter(
        (json.loads(m.data)["type"], json.loads(m.data)["subject"]) for m in messages
    )
    for case_id in case_ids:
        assert subjects[("nl.kring.request-received.v1", case_id)] == 1
        assert subjects[("nl.kring.coordinator-assigned.v1", case_id)] == 1


async def test_nats_killed_mid_flow_and_restarted_with_its_store_loses_nothing(
    own_nats: NatsServer, services: dict[str, ServiceProcess]
) -> None:
    intake, coordination = services["intake"], services["coordination"]
    async with httpx.AsyncClient(timeout=10, headers=staff_headers()) as http:
        await _with_pool(http, coordination)
        case_ids = []
        for number in range(CASES):
            if number == CASES // 3:
                own_nats.stop(signal.SIGKILL)  # the APIs keep accepting meanwhile
            if number == 2 * CASES // 3:
                own_nats.start()
            case_ids.append(await _submit_and_accept(http, intake.url))
        await eventually(
            lambda: _assigned_count_is(own_nats, CASES), timeout=60, what="all assigned"
        )
        pool = (await http.get(f"{coordination.url}/coordinators")).json()["items"]
        assert pool[0]["open_cases"] == CASES
    messages = await stream_messages(own_nats)
    ids = Counter(json.loads(m.data)["id"] for m in messages)
    assert [i for i, n in ids.items() if n > 1] == []
    assert len(ids) == 3 * CASES  # per case: submitted, received (intake), assigned


async def _with_pool(http: httpx.AsyncClient, coordination: ServiceProcess) -> None:
    """Wait for coordination, then give it one coordinator with room for every case."""
    await _until_ok(http, f"{coordination.url}/health/ready")
    response = await http.post(
        f"{coordination.url}/coordinators",
        json={"coordinator_id": "c1", "regions": ["Utrecht"], "languages": ["nl"], "capacity": 50},
        headers=headers(),
    )
    assert response.status_code == 201, response.text


async def _submit_and_accept(http: httpx.AsyncClient, base: str) -> str:
    created = await _retry(lambda: http.post(f"{base}/cases", json=REQUEST_BODY, headers=headers()))
    case_id: str = created.json()["case_id"]
    await _retry(
        lambda: http.post(f"{base}/cases/{case_id}/clarify", json=CLARIFICATION, headers=headers())
    )
    await _retry(lambda: http.post(f"{base}/cases/{case_id}/accept", headers=headers()))
    return case_id


async def _retry(call):  # type: ignore[no-untyped-def]
    """A just-restarted service may not listen for a moment; a client retries."""
    for _ in range(100):
        try:
            response = await call()
        except httpx.TransportError:
            await asyncio.sleep(0.05)
            continue
        assert response.status_code < 300, response.text
        return response
    raise AssertionError("service never answered")


async def _until_ok(http: httpx.AsyncClient, url: str) -> None:
    async def ok() -> bool:
        try:
            return (await http.get(url)).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(ok, what=url)


async def _assigned_count_is(nats: NatsServer, expected: int) -> bool:
    messages = await stream_messages(nats, "kring.coordination.>")
    return len(messages) >= expected
