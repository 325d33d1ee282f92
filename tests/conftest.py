from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import tokens
from tests.servers import NatsServer, postgres_url
from tests.tokens import Issuer

# What the tests themselves read; every other KRING_ variable configures a service, and one left
# in the shell (or exported by make) would change what the tests run against.
TEST_SETTINGS = ("KRING_TEST_", "KRING_FUZZ_EXAMPLES")


def pytest_configure(config: pytest.Config) -> None:
    for name in [n for n in os.environ if n.startswith("KRING_")]:
        if not name.startswith(TEST_SETTINGS):
            del os.environ[name]


@pytest.fixture(scope="session", autouse=True)
def session_issuer() -> Issuer:
    """The development issuer, as its own process, for the session: every service a test
    starts (in this process or its own) validates tokens against its key set over HTTP, and
    ``tests.tokens`` signs tokens with its key."""
    return tokens.session_issuer()[0]


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One nats-server for the session; tests keep apart by unique ids and stream names."""
    server = NatsServer(tmp_path_factory.mktemp("nats")).start()
    yield server
    server.stop()


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of the test's own, for tests that stop and restart it."""
    server = NatsServer(tmp_path / "nats").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    # Not under pytest's own temporary folder: the embedded server runs as a user of its own,
    # and every pytest session that starts (another terminal's, say) makes that folder's root
    # private again, locking the server out of its data mid-run.
    base = Path(tempfile.mkdtemp(prefix="kring-test-postgres-"))
    url, server = postgres_url(base)
    yield url
    if server is not None:
        server.cleanup()  # type: ignore[attr-defined]
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def schema_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"
