"""The whole system as ``make run`` starts it: nats-server, the development issuer and four
service processes, one per test module, with the follow-up schedule compressed so a case reaches
its follow-up in seconds, and a real SMTP server (aiosmtpd) that plans e-mails the copies to.
Everyone signs in through that issuer, as a user of ``make run`` does."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import psutil
import pytest
from nats.aio.client import Client

from kring.client import DevLogin, Who
from kring.natsconf import keys_dir, read_password
from shared.permissions import inbox_prefix
from tests.servers import Mailbox, free_port, smtp_server

SERVICES = ("intake", "coordination", "plans", "followup")
#: Beside the four that hold every case: the partners service, holding those shared.
PARTNERS = "partners"


class System:
    def __init__(
        self,
        nats_port: int,
        ports: dict[str, int],
        env: dict[str, str],
        mailbox: Mailbox,
        issuer_url: str,
        *,
        data: Path,
        runner: subprocess.Popen[bytes],
        console_url: str,
    ) -> None:
        self.nats_url = f"nats://127.0.0.1:{nats_port}"
        self.ports = ports
        self.env = env
        self.mailbox = mailbox
        self.issuer_url = issuer_url
        #: Tokens from the system's own development issuer, one per person.
        self.tokens = DevLogin(issuer_url)
        #: ``kring run``'s data folder, its process, and what it printed (in that folder).
        self.data = data
        self.runner = runner
        self.log_path = data / "kring-run.log"
        #: The web console ``kring run`` started.
        self.console_url = console_url

    def headers(self, who: Who) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.token_sync(who)}"}

    async def connect(self, identity: str = "analyst", **options: Any) -> Client:
        """Connect as ``identity`` with the password ``kring run`` made in its data folder."""
        password = read_password(keys_dir(self.data), identity)
        assert password is not None, f"kring run made no password for {identity}"
        return await nats.connect(
            self.nats_url,
            user=identity,
            password=password,
            inbox_prefix=inbox_prefix(identity),
            **options,
        )

    @property
    def urls(self) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}

    def kring(
        self, *args: str, timeout: float = 90, who: Who | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The CLI as a user runs it: signed in (``kring login``) or, as ``who``, with a token of
        the system's issuer in ``KRING_TOKEN``."""
        env = self.env | ({"KRING_TOKEN": self.tokens.token_sync(who)} if who else {})
        return subprocess.run(
            [sys.executable, "-m", "kring.cli", *args],
            env=env,
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


def stop_all(runner: subprocess.Popen[bytes]) -> None:
    """Stop ``kring run`` as a user does (Ctrl-C: it stops what it started); whatever of it is
    still there after 30 s is killed, the processes it started included (each in a session of
    its own, so they outlive a runner killed alone, on the ports of later tests)."""
    try:
        started = psutil.Process(runner.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        started = []
    if runner.poll() is None:
        runner.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            runner.wait(timeout=30)
    if runner.poll() is None:
        runner.kill()
        runner.wait(timeout=10)
    for process in started:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory, mailbox: tuple[Mailbox, int]
) -> Iterator[System]:
    nats_port = free_port()
    ports = {name: free_port() for name in (*SERVICES, PARTNERS)}
    issuer_url = f"http://127.0.0.1:{free_port()}"
    data = tmp_path_factory.mktemp("system")
    # kring run starts its own development issuer: not the one of the test session.
    env = {k: v for k, v in os.environ.items() if k != "KRING_OIDC_ISSUER"}
    env |= {
        "KRING_ISSUER_PORT": issuer_url.rpartition(":")[2],
        "KRING_ISSUER_URL": issuer_url,
        "KRING_TOKEN_FILE": str(data / "cli-token"),
    }
    env |= {f"KRING_{n.upper()}_PORT": str(p) for n, p in ports.items()}
    # The console too, on a port of its own (kring run registers its callback with the issuer).
    console_port = free_port()
    env["KRING_CONSOLE_PORT"] = str(console_port)
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
        # Partners' webhooks to receivers on this machine, over plain http, retried soon.
        "KRING_WEBHOOK_ALLOW_PRIVATE": "true",
        "KRING_WEBHOOK_ALLOW_HTTP": "true",
        "KRING_WEBHOOK_TICK_SECONDS": "0.1",
        "KRING_WEBHOOK_FIRST_RETRY_SECONDS": "0.2",
    }
    env["KRING_DATA_DIR"] = str(data)  # where the CLI finds the NATS passwords kring run made
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
    while not all(ready(p) for p in (*ports.values(), console_port)):
        if runner.poll() is not None or time.monotonic() > deadline:
            stop_all(runner)
            log.close()
            pytest.fail(f"the system did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)
    yield System(
        nats_port,
        ports,
        env,
        mailbox[0],
        issuer_url,
        data=data,
        runner=runner,
        console_url=f"http://127.0.0.1:{console_port}",
    )
    try:
        stop_all(runner)
    finally:
        log.close()
    assert runner.returncode == 0, log_path.read_text()[-3000:]
    # Every flow, the demo and the CLI did all they had to within their permissions.
    nats_log = (data / "logs" / "nats.log").read_text(encoding="utf-8", errors="replace")
    assert [line for line in nats_log.splitlines() if "Violation" in line] == []
