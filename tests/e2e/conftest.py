"""The whole system as ``make run`` starts it: nats-server and four service processes, one per
test module, with the follow-up schedule compressed so a case reaches its follow-up in seconds,
and a real SMTP server (aiosmtpd) that plans e-mails the copies to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Mailbox, free_port, smtp_server

SERVICES = ("intake", "coordination", "plans", "followup")


class System:
    def __init__(
        self,
        nats_port: int,
        ports: dict[str, int],
        env: dict[str, str],
        mailbox: Mailbox,
        data: Path,
    ) -> None:
        self.nats_url = f"nats://127.0.0.1:{nats_port}"
        #: The system's data folder (``kring run --data-dir``); tests may write beside it.
        self.data = data
        self.ports = ports
        self.env = env
        self.mailbox = mailbox

    @property
    def urls(self) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}

    def kring(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kring.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory, mailbox: tuple[Mailbox, int]
) -> Iterator[System]:
    nats_port = free_port()
    ports = {name: free_port() for name in SERVICES}
    env = os.environ | {f"KRING_{n.upper()}_PORT": str(p) for n, p in ports.items()}
    env |= {f"KRING_{n.upper()}_URL": f"http://127.0.0.1:{p}" for n, p in ports.items()}
    env |= {
        "KRING_NATS_URL": f"nats://127.0.0.1:{nats_port}",
        # A day lasts a twentieth of a second: a three-month contact is due after ~5 s.
        "KRING_FOLLOWUP_SECONDS_PER_DAY": "0.05",
        "KRING_TIMER_TICK_SECONDS": "0.2",
        "KRING_SMTP_HOST": "127.0.0.1",
        "KRING_SMTP_PORT": str(mailbox[1]),
        "KRING_SMTP_FROM": "kring@example.org",
        "KRING_PLANS_DELIVERY_TICK_SECONDS": "0.2",
    }
    data = tmp_path_factory.mktemp("system")
    # A file, not a pipe: nobody reads a pipe while the tests run, and a full one would block
    # the system's own output (and so its shutdown).
    log_path = data / "kring-run.log"
    log = log_path.open("w")
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kring.cli",
            "run",
            "--data-dir",
            str(data),
            "--nats-port",
            str(nats_port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not all(ready(p) for p in ports.values()):
        if runner.poll() is not None or time.monotonic() > deadline:
            runner.kill()
            log.close()
            pytest.fail(f"the system did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)
    yield System(nats_port, ports, env, mailbox[0], data)
    runner.send_signal(signal.SIGINT)
    try:
        runner.wait(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
        log.close()
    assert runner.returncode == 0, log_path.read_text()[-3000:]
