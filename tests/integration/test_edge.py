"""The HTTP edge: hosts not configured are 400; a body over the limit is 413 before it is parsed,
declared or chunked, and a service sent four 100 MB bodies at once keeps its memory; invalid
input names the field but never echoes it; answers carry nosniff, no-store and, for documents,
a Content-Security-Policy."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.intake.bootstrap import build
from services.intake.settings import IntakeSettings
from services.plans.bootstrap import build as build_plans
from services.plans.settings import PlansSettings
from shared.edge import DOCUMENT_CSP
from shared.runtime import build_service
from tests.factories import REQUEST_BODY, coordinator_assigned, delivered, headers, request_received
from tests.servers import NatsServer, ServiceProcess
from tests.unit.test_plans_rules import conference, content, principal

NO_NATS = "nats://127.0.0.1:1"
MB = 1024 * 1024


@pytest.fixture
async def intake(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    definition = build(
        IntakeSettings(nats_url=NO_NATS, data_dir=tmp_path, allowed_hosts="127.0.0.1,.example.org")
    )
    transport = httpx.ASGITransport(app=build_service(definition).api)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            yield http
    finally:
        definition.app.close()


async def test_a_host_not_configured_is_400_before_anything_runs(
    intake: httpx.AsyncClient,
) -> None:
    manager = headers()
    for host in ("evil.example", "127.0.0.1.evil.example", "example.org.evil", ""):
        refused = await intake.get("/cases", headers=manager | {"Host": host})
        assert refused.status_code == 400, host
        assert refused.json() == {"detail": "this host name is not served here"}
    for host in ("127.0.0.1:8001", "api.example.org", "API.Example.org:443"):
        assert (await intake.get("/cases", headers=manager | {"Host": host})).status_code == 200
    # Probes and Prometheus name a pod's address: health and metrics answer whatever the host,
    # metrics to an operator's token only.
    assert (await intake.get("/health/live", headers={"Host": "10.1.2.3:8001"})).status_code == 200
    pod = {"Host": "10.1.2.3:8001"}
    assert (await intake.get("/metrics", headers=pod)).status_code == 401
    assert (
        await intake.get("/metrics", headers=pod | headers("ops", "operator"))
    ).status_code == 200


async def test_a_declared_body_over_the_limit_is_413_unparsed_and_unauthenticated_too(
    intake: httpx.AsyncClient,
) -> None:
    big = b'{"description": "' + b"x" * (2 * MB) + b'"}'
    for who in (headers(), {}):
        refused = await intake.post(
            "/cases", content=big, headers=who | {"Content-Type": "application/json"}
        )
        assert refused.status_code == 413, refused.text
        assert "xxxx" not in refused.text


async def test_a_chunked_body_over_the_limit_is_413(intake: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b" " * MB

    refused = await intake.post("/cases", content=chunks(), headers=headers())
    assert refused.status_code == 413


async def test_invalid_input_names_the_field_and_never_echoes_it(
    intake: httpx.AsyncClient,
) -> None:
    marker = f"Jansen-{uuid.uuid4().hex}"
    wrong = REQUEST_BODY | {
        "model": marker,
        "requester": {"name": marker, "relation": marker},
        "languages": [marker * 3],
        "unexpected": marker,
    }
    refused = await intake.post("/cases", json=wrong, headers=headers())
    assert refused.status_code == 422
    locations = [e["loc"] for e in refused.json()["detail"]]
    assert ["body", "model"] in locations and ["body", "unexpected"] in locations
    assert marker not in refused.text
    assert all(set(e) == {"type", "loc", "msg"} for e in refused.json()["detail"])
    broken = await intake.post("/cases", content=f'{{"x": "{marker}"'.encode(), headers=headers())
    assert broken.status_code == 422 and marker not in broken.text


async def test_every_answer_is_nosniff_and_no_store(intake: httpx.AsyncClient) -> None:
    for response in (
        await intake.get("/cases", headers=headers()),
        await intake.get("/cases"),
        await intake.get(f"/cases/{uuid.uuid4()}", headers=headers()),
        await intake.get("/health/live"),
        await intake.get("/cases", headers={"Host": "evil.example"}),
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
    docs = await intake.get("/docs")
    assert "frame-ancestors 'none'" in docs.headers["Content-Security-Policy"]


async def test_the_plans_documents_carry_a_policy_that_loads_and_runs_nothing(
    tmp_path: Path,
) -> None:
    definition = build_plans(PlansSettings(nats_url=NO_NATS, data_dir=tmp_path))
    app = definition.app
    case_id = uuid.uuid4()
    app.process(delivered(request_received(case_id), 1))
    app.process(delivered(coordinator_assigned(case_id), 1, origin="coordination"))
    app.process(delivered(conference(case_id), 2, origin="coordination"))
    app.write(case_id, content(), principal("c1", "coordinator"))
    transport = httpx.ASGITransport(app=build_service(definition).api)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            for kind in ("html", "pdf"):
                document = await http.get(
                    f"/cases/{case_id}/plan/document.{kind}", headers=headers("c1", "coordinator")
                )
                assert document.status_code == 200
                assert document.headers["Content-Security-Policy"] == DOCUMENT_CSP
                assert document.headers["X-Content-Type-Options"] == "nosniff"
                assert document.headers["Cache-Control"] == "no-store"
    finally:
        app.close()


# -- a real process, real sockets -------------------------------------------------------------
def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def upload(port: int, token: str, megabytes: int, chunked: bool) -> str:
    """Send a body of ``megabytes`` as fast as the server takes it; return its status line.
    A reader thread takes the answer as soon as it comes (the server answers before the body
    is all sent, then closes)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    answer: list[bytes] = []

    def read() -> None:
        try:
            answer.append(sock.recv(4096))
        except OSError:
            answer.append(b"")

    reader = threading.Thread(target=read)
    reader.start()
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {megabytes * MB}"
    head = (
        f"POST /cases HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\n"
    ).encode()
    chunk = b"x" * MB
    try:
        sock.sendall(head + length.encode() + b"\r\n\r\n")
        for _ in range(megabytes):
            if not reader.is_alive():
                break
            sock.sendall(f"{MB:x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk)
    except OSError:
        pass  # the server answered and closed: what was to be shown
    reader.join(timeout=30)
    sock.close()
    return answer[0].split(b"\r\n", 1)[0].decode() if answer else ""


def test_four_100_mb_bodies_at_once_leave_a_service_s_memory_as_it_was(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    service = ServiceProcess("intake", nats_server, tmp_path).start()
    try:
        assert service.process is not None
        token = headers()["Authorization"].removeprefix("Bearer ")
        with httpx.Client(base_url=service.url) as http:  # warm: imports, the key set
            assert http.get("/cases", headers=headers()).status_code == 200
        before = rss_mb(service.process.pid)
        statuses: list[str] = []
        threads = [
            threading.Thread(
                target=lambda chunked=chunked: statuses.append(
                    upload(service.port, token, 100, chunked)
                )
            )
            for chunked in (False, True, False, True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        after = rss_mb(service.process.pid)
        assert [s.split(" ")[1] for s in statuses] == ["413"] * 4, statuses
        print(f"RSS before {before:.1f} MB, after four 100 MB bodies {after:.1f} MB")
        assert after - before < 30, (before, after)
        with httpx.Client(base_url=service.url) as http:  # and it still serves
            created = http.post("/cases", json=REQUEST_BODY, headers=headers())
            assert created.status_code == 201
            assert json.loads(created.text)["stage"] == "submitted"
    finally:
        service.stop()
