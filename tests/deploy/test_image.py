"""The image: built in two stages, run as a non-root user, the service chosen by its command; and
its health check, run for real against a real service and a real nats-server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from tests.deploy.files import ROOT
from tests.harness import eventually
from tests.servers import NatsServer, ServiceProcess

DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
HEALTHCHECK = ROOT / "deploy" / "docker" / "healthcheck.py"


def _stages() -> list[str]:
    return [line for line in DOCKERFILE.splitlines() if line.startswith("FROM ")]


def test_two_stages_and_the_final_one_runs_as_a_non_root_user() -> None:
    stages = _stages()
    assert len(stages) == 2 and stages[0].endswith(" AS build")
    final = DOCKERFILE.split("\n" + stages[1] + "\n", 1)[1]
    assert "USER 10001:10001" in final
    assert "pip install" not in final and "apt-get" not in final  # nothing built or fetched there
    assert "HEALTHCHECK" in final and "/opt/kring/healthcheck.py" in final


def test_the_build_context_holds_only_what_the_image_needs() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ignored[1] == "*"  # everything out, then only the named parts back in
    allowed = {line[1:].rstrip("/") for line in ignored if line.startswith("!")}
    copied = {
        line.split()[1].rstrip("/")
        for line in DOCKERFILE.splitlines()
        if line.startswith("COPY ") and "--from" not in line
    }
    assert copied - {"deploy/docker/healthcheck.py"} <= allowed
    assert "deploy/docker" in allowed


def _check(service: ServiceProcess, name: str) -> int:
    ran = subprocess.run(
        [sys.executable, str(HEALTHCHECK), name],
        env=service.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return ran.returncode


async def test_the_health_check_is_ready_with_nats_and_not_without(tmp_path: Path) -> None:
    nats = NatsServer(tmp_path / "nats").start()
    service = ServiceProcess("intake", nats, tmp_path / "data").start()
    try:

        async def ready() -> bool:
            return await asyncio.to_thread(_check, service, "intake") == 0

        async def not_ready() -> bool:
            return await asyncio.to_thread(_check, service, "intake") == 1

        await eventually(ready, timeout=30, what="the health check to pass", interval=0.3)
        nats.stop()
        await eventually(not_ready, timeout=30, what="the health check to fail", interval=0.3)
    finally:
        service.stop()
        nats.stop()


def test_the_health_check_names_a_container_that_runs_no_service() -> None:
    ran = subprocess.run(
        [sys.executable, str(HEALTHCHECK)], capture_output=True, text=True, timeout=30
    )
    assert ran.returncode == 1
    assert "not a Kring service" in ran.stdout
