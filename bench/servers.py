"""The servers a bench run starts for itself: nats-server configured as ``kring run`` configures it
(``sync_interval: always``, the same identities and permissions), and the four services as
separate processes on SQLite, each with its own NATS identity."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from kring.local import free_port, wait_for_port
from tests.servers import NatsServer

SERVICES = ("intake", "coordination", "plans", "followup")
#: What every bench run sets for the services and the peer alike, whatever the caller's
#: environment says (``make`` exports a 0.2 s follow-up day for ``make run``): the defaults.
BENCH_ENV = {"KRING_FOLLOWUP_SECONDS_PER_DAY": "86400"}


class Nats(NatsServer):
    """nats-server as ``kring run`` starts it; ``closed=False``: the same without identities,
    for the raw baselines (nothing of Kring's in the way)."""

    def __init__(self, work: Path, *, sync_always: bool = True, closed: bool = True) -> None:
        name = "nats" if closed else "nats-open"
        super().__init__(
            work / name, keys_dir=work / "keys" / "nats", closed=closed, sync_always=sync_always
        )


@dataclass
class Service:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


@dataclass
class System:
    """nats-server and the four services, as ``kring run`` starts them (logs to files)."""

    work: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    nats: Nats | None = None
    services: dict[str, Service] = field(default_factory=dict)
    #: The development issuer (``kring.issuer``) the services validate tokens against.
    issuer: subprocess.Popen[bytes] | None = None
    issuer_url: str = ""

    @property
    def urls(self) -> dict[str, str]:
        return {name: service.url for name, service in self.services.items()}

    def start(self) -> System:
        self.nats = Nats(self.work).start()
        data = self.work / "data"
        data.mkdir(parents=True, exist_ok=True)
        ports = {name: free_port() for name in SERVICES}
        self.issuer, self.issuer_url = start_issuer(self.work)
        env = os.environ | {
            "KRING_OIDC_ISSUER": self.issuer_url,
            "KRING_DATA_DIR": str(data),
            "KRING_HTTP_HOST": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
            **{f"KRING_{name.upper()}_PORT": str(port) for name, port in ports.items()},
            **BENCH_ENV,
            **self.extra_env,
        }
        for name, port in ports.items():
            log = self.work / f"{name}.log"
            with log.open("ab") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", f"services.{name}.main"],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env | self.nats.env(name),
                )
            self.services[name] = Service(name, port, process, log)
        deadline = time.monotonic() + 60
        while not all(service.ready() for service in self.services.values()):
            for service in self.services.values():
                if service.process.poll() is not None:
                    raise RuntimeError(f"{service.name} exited; see {service.log}")
            if time.monotonic() > deadline:
                raise TimeoutError("services not ready within 60 s")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        for service in self.services.values():
            if service.process.poll() is None:
                service.process.terminate()
        for service in self.services.values():
            try:
                service.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                service.process.kill()
        stop_issuer(self.issuer)
        if self.nats is not None:
            self.nats.stop()


def memory_mb(pid: int, field_name: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) / 1024
    raise LookupError(field_name)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_issuer(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The development issuer (``kring.issuer``) on a free port, its key under ``work``: the
    bench signs in through it as the demo does. Returns the process and its URL."""
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    env = os.environ | {
        "KRING_DATA_DIR": str(work / "issuer"),
        "KRING_ISSUER_PORT": str(port),
        "KRING_ISSUER_HOST": "127.0.0.1",
    }
    with (work / "issuer.log").open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kring.issuer"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    wait_for_port(port, timeout=30)
    return process, f"http://127.0.0.1:{port}"


def stop_issuer(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        process.wait(timeout=15)
