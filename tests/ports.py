"""Ports for the tests' servers, taken below the kernel's ephemeral range.

A port found free by ``bind(0)`` comes from the ephemeral range, the one every outgoing
connection takes its local port from: between the test choosing it and its server binding it
(seconds, for a process that has to start), any connection of any process may take it, and the
server exits with "address already in use" (a nats-server of the compose topology, a service
under ``kring run``, once each in CI). Here each test worker (pytest-xdist) has a band of its own
below that range, handed out in turn from a random start, each port checked free before it is
given.
"""

from __future__ import annotations

import os
import random
import socket
import threading
from pathlib import Path

#: The lowest port handed out (above what the system and the services' defaults use).
LOWEST = 10000
#: At most this many workers get bands of their own (more share, checked free all the same).
WORKERS = 4
_lock = threading.Lock()
_next: int | None = None


def _ephemeral_low() -> int:
    try:
        low = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]
        return int(low)
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _band() -> tuple[int, int]:
    size = max(200, (min(_ephemeral_low(), 32768) - LOWEST) // WORKERS)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) % WORKERS if worker.isdigit() else 0
    start = LOWEST + index * size
    return start, size


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port nothing listens on now, outside the ephemeral range, not handed out before by
    this worker until its band has come round."""
    global _next
    with _lock:
        start, size = _band()
        if _next is None:
            _next = start + random.randrange(size)
        for _ in range(size):
            port = _next
            _next = start + (_next + 1 - start) % size
            if _bindable(port):
                return port
    raise RuntimeError(f"no free port in {start}-{start + size - 1}")
