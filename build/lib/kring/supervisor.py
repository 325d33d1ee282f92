"""``kring run``: nats-server, the services and the console in the foreground, stopped
together.

One lock per data folder keeps two runs from sharing stores; ports are checked up front so a
clash reads as a sentence, not a stack trace. Children run in their own sessions, so Ctrl-C
reaches only this process, which stops the services first (they drain to NATS) and NATS last.

A child that dies is started again, after a pause that grows while it keeps dying soon after
each start (one line says what died, with what exit code, and when it comes back); only a
service that says its settings are wrong (``shared.runtime.EXIT_CONFIG``) stops everything,
since starting it again would not help.

Each service's store is encrypted with a key of its own, made once in ``<data>/keys/`` and
readable by this user only, like everything under the data folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from kring.local import NatsServerNotFoundError, nats_server_binary
from kring.natsconf import (
    CredentialsError,
    ensure_credentials,
    keys_dir,
    read_credentials,
    write_server_config,
)

SERVICES: tuple[tuple[str, str, int], ...] = (
    ("intake", "KRING_INTAKE_PORT", 8001),
    ("coordination", "KRING_COORDINATION_PORT", 8002),
    ("plans", "KRING_PLANS_PORT", 8003),
    ("followup", "KRING_FOLLOWUP_PORT", 8004),
    ("partners", "KRING_PARTNERS_PORT", 8006),
)
#: The development issuer (``kring.issuer``), unless KRING_OIDC_ISSUER names another one.
ISSUER = ("issuer", "KRING_ISSUER_PORT", 8005)
#: The web console (``services.console``): no NATS identity, no store; it calls the services.
CONSOLE = ("console", "KRING_CONSOLE_PORT", 8000)
CONSOLE_CLIENT = "kring-console"
NATS_START_SECONDS = 10.0
HEALTH_SECONDS = 30.0
STOP_SECONDS = 10.0
#: A child that ran this long before dying counts as having worked: it comes back at once.
STABLE_SECONDS = 30.0
#: Pauses before a restart, by how many times in a row the child died within STABLE_SECONDS.
RESTART_PAUSES = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
#: From this many quick deaths in a row, the line says it keeps crashing.
KEEPS_CRASHING = 3
#: sysexits EX_CONFIG, as ``shared.runtime`` exits when a service's settings are wrong.
EXIT_CONFIG = 78
#: The data folder and everything in it: this user's alone.
PRIVATE_UMASK = 0o077

_print_lock = threading.Lock()


class StartupError(Exception):
    """A problem the user can fix; its message is printed as is, without a traceback."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    readers: list[threading.Thread] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    """Starts the children and starts each again when it dies, with back-off."""

    def __init__(self, starters: dict[str, Callable[[], Child]]) -> None:
        self.starters = starters
        self.children: dict[str, Child] = {}
        #: Children waiting to be started again: when, by name.
        self.due: dict[str, float] = {}
        self.quick_deaths: dict[str, int] = dict.fromkeys(starters, 0)

    def add(self, name: str, starter: Callable[[], Child]) -> None:
        self.starters[name] = starter
        self.quick_deaths[name] = 0

    def start(self, name: str) -> Child:
        child = self.starters[name]()
        self.children[name] = child
        return child

    def running(self) -> list[Child]:
        return [self.children[name] for name in self.children if name not in self.due]

    def step(self) -> None:
        """Notice who died, say so, and start whoever's pause is over."""
        now = time.monotonic()
        for name, child in self.children.items():
            if name in self.due or child.process.poll() is None:
                continue
            code = child.process.returncode
            for reader in child.readers:
                reader.join(timeout=2.0)  # its last lines first
            if code == EXIT_CONFIG:
                raise StartupError(
                    f"{name} cannot start with its settings (exit code {code}; its last line "
                    "is above); stopping everything."
                )
            ran = now - child.started
            quick = self.quick_deaths[name] + 1 if ran < STABLE_SECONDS else 0
            self.quick_deaths[name] = quick
            pause = RESTART_PAUSES[min(quick, len(RESTART_PAUSES) - 1)]
            self.due[name] = now + pause
            back_at = time.strftime("%H:%M:%S", time.localtime(time.time() + pause))
            if quick >= KEEPS_CRASHING:
                said = f"keeps crashing at start ({quick} times in a row), last with exit code"
            else:
                said = f"exited after {ran:.0f} s with exit code"
            _err(f"{name} {said} {_exit_code(code)}; starting it again in {pause:g} s ({back_at})")
        for name, at in list(self.due.items()):
            if at <= now:
                del self.due[name]
                self.start(name)
                _out(f"{name} started again")


def _exit_code(code: int) -> str:
    if code >= 0:
        return str(code)
    try:
        return f"{code} ({signal.Signals(-code).name})"
    except ValueError:
        return str(code)


def run_system(
    data_dir: Path,
    nats_port: int = 4222,
    host: str = "127.0.0.1",
    extra_env: dict[str, str] | None = None,
) -> int:
    """Start nats-server and the four services in the foreground; return an exit code."""
    env = {**os.environ, **(extra_env or {})}
    data_dir = data_dir.resolve()  # nats-server and the services must agree on one folder
    os.umask(PRIVATE_UMASK)  # inherited by nats-server and the services
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        _make_private(data_dir)
        lock = _lock(data_dir)
    except StartupError as error:
        _err(str(error))
        return 1
    with lock, _signals_interrupt():
        try:
            ports = _service_ports(env)
            issuer_port = _issuer_port(env)
            extra = {"console": _port(env, CONSOLE)}
            if issuer_port:
                extra["issuer"] = issuer_port
            _check_ports(host, nats_port, ports | extra)
        except StartupError as error:
            _err(str(error))
            return 1
        return _run(data_dir, nats_port, host, env, ports)


def _run(
    data_dir: Path, nats_port: int, host: str, env: dict[str, str], ports: dict[str, int]
) -> int:
    """Start, watch and stop; every path out of here stops what was started."""
    supervisor: Supervisor | None = None
    code = 0
    try:
        # One identity per process (shared.permissions); the passwords are made once.
        try:
            passwords = ensure_credentials(keys_dir(data_dir))
        except CredentialsError as error:
            raise StartupError(str(error)) from None
        keys = {name: _cipher_key(data_dir, name) for name in ports}
        # Read again at every start of nats-server: partners added (``kring partners add``)
        # since kring run started are in the authorization it writes.
        supervisor = Supervisor(
            {"nats-server": lambda: _start_nats(data_dir, nats_port, host, _passwords(data_dir))}
        )
        nats = supervisor.start("nats-server")
        _wait_nats(nats, data_dir, nats_port, host)
        env = {
            **env,
            "KRING_NATS_URL": f"nats://{_netloc(host, nats_port)}",
            "KRING_DATA_DIR": str(data_dir),
            "KRING_HTTP_HOST": host,
        }
        # Piped output is block-buffered; unbuffered children show their lines as they happen.
        env.setdefault("PYTHONUNBUFFERED", "1")
        # The children write into a pipe, so they would log JSON; a person at a terminal reads
        # the console form (an operator's KRING_LOG_FORMAT still wins).
        if sys.stdout.isatty():
            env.setdefault("KRING_LOG_FORMAT", "console")
        issuer_port = _issuer_port(env)
        if issuer_port is not None:
            # The issuer names itself in its tokens exactly as the services expect it.
            env["KRING_OIDC_ISSUER"] = f"http://{_netloc(host, issuer_port)}"
            env["KRING_ISSUER_URL"] = env["KRING_OIDC_ISSUER"]
            env["KRING_ISSUER_HOST"], env["KRING_ISSUER_PORT"] = host, str(issuer_port)
            issuer_env = dict(env)
            # The console signs people in here: its callback, wherever it listens.
            issuer_env["KRING_ISSUER_CLIENTS"] = _with_console(
                env.get("KRING_ISSUER_CLIENTS"), _console_url(env, host)
            )
            supervisor.add(
                "issuer",
                lambda: _start_service("issuer", data_dir, issuer_env, module="kring.issuer"),
            )
            supervisor.start("issuer")
            _wait_healthy(host, {"issuer": issuer_port}, supervisor)
        for name in ports:
            # Each its own NATS identity, and its own key: one service's key opens no other's
            # store.
            service_env = {
                **env,
                "KRING_NATS_USER": name,
                "KRING_NATS_PASSWORD": passwords[name],
                "KRING_CIPHER_KEY": keys[name],
            }
            if name == "partners":
                # The links in each partner event point at plans as this machine serves it.
                service_env.setdefault(
                    "KRING_PARTNERS_PLANS_URL", f"http://{_netloc(host, ports['plans'])}"
                )
            supervisor.add(name, _service_starter(name, data_dir, service_env))
            supervisor.start(name)
        _wait_healthy(host, ports, supervisor)
        console_port = _port(env, CONSOLE)
        console_env = {
            **env,
            "KRING_CONSOLE_PORT": str(console_port),
            "KRING_CONSOLE_URL": _console_url(env, host),
            **{f"KRING_{n.upper()}_URL": f"http://{_netloc(host, p)}" for n, p in ports.items()},
        }
        supervisor.add("console", _service_starter("console", data_dir, console_env))
        supervisor.start("console")
        _wait_healthy(host, {"console": console_port}, supervisor)
        _print_summary(data_dir, nats_port, host, ports, env["KRING_OIDC_ISSUER"], console_env)
        while True:
            supervisor.step()
            time.sleep(0.5)
    except KeyboardInterrupt:
        _out("\nStopping Kring...")
    except StartupError as error:
        _err(str(error))
        code = 1
    finally:
        with _signals_ignored():
            if supervisor is not None:
                running = supervisor.running()
                _stop([c for c in running if c.name != "nats-server"])
                _stop([c for c in running if c.name == "nats-server"])
    _out(f"Kring stopped; data kept in {data_dir}")
    return code


def _passwords(data_dir: Path) -> dict[str, str]:
    try:
        return read_credentials(keys_dir(data_dir))
    except CredentialsError as error:
        raise StartupError(str(error)) from None


def _service_starter(name: str, data_dir: Path, env: dict[str, str]) -> Callable[[], Child]:
    return lambda: _start_service(name, data_dir, env)


def _make_private(data_dir: Path) -> None:
    """Take group and other access off the data folder and everything in it (an earlier
    release left stores and logs readable by anyone)."""
    for folder, folders, files in os.walk(data_dir):
        for path in [Path(folder), *(Path(folder) / name for name in (*folders, *files))]:
            with contextlib.suppress(FileNotFoundError):
                mode = stat.S_IMODE(path.lstat().st_mode)
                if mode & PRIVATE_UMASK and not path.is_symlink():
                    path.chmod(mode & ~PRIVATE_UMASK)


def _lock(data_dir: Path) -> IO[str]:
    """Two runs on one data folder would corrupt each other's stores; flock dies with us."""
    handle = (data_dir / "kring.lock").open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StartupError(
            f"Kring is already running with data folder {data_dir} (another `make run`?). "
            "Stop it first, or set KRING_DATA_DIR to another folder."
        ) from None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _service_ports(env: dict[str, str]) -> dict[str, int]:
    ports: dict[str, int] = {}
    for name, var, default in SERVICES:
        raw = env.get(var, str(default))
        try:
            ports[name] = int(raw)
        except ValueError:
            raise StartupError(f"{var}={raw!r} is not a port number.") from None
    return ports


def _port(env: dict[str, str], entry: tuple[str, str, int]) -> int:
    _, var, default = entry
    raw = env.get(var, str(default))
    try:
        return int(raw)
    except ValueError:
        raise StartupError(f"{var}={raw!r} is not a port number.") from None


def _console_url(env: dict[str, str], host: str) -> str:
    """Where people reach the console (``KRING_CONSOLE_URL``), by default where it listens."""
    named = env.get("KRING_CONSOLE_URL")
    if named:
        return named.rstrip("/")
    return f"http://{_netloc(host, _port(env, CONSOLE))}"


def _with_console(clients: str | None, console_url: str) -> str:
    """The issuer's clients with the console's, registered for its callback (unless the
    operator registered it themself)."""
    try:
        registered = json.loads(clients) if clients else []
    except ValueError:
        registered = None
    if not isinstance(registered, list):
        return clients or "[]"  # the issuer says what is wrong with it
    if any(isinstance(c, dict) and c.get("client_id") == CONSOLE_CLIENT for c in registered):
        return json.dumps(registered)
    redirects = [f"{console_url}/auth/callback"]
    if console_url.startswith("http://127.0.0.1:"):
        redirects.append(redirects[0].replace("127.0.0.1", "localhost", 1))
    return json.dumps([*registered, {"client_id": CONSOLE_CLIENT, "redirect_uris": redirects}])


def _issuer_port(env: dict[str, str]) -> int | None:
    """The development issuer's port, or None where KRING_OIDC_ISSUER names a real issuer."""
    if env.get("KRING_OIDC_ISSUER"):
        return None
    raw = env.get(ISSUER[1], str(ISSUER[2]))
    try:
        return int(raw)
    except ValueError:
        raise StartupError(f"{ISSUER[1]}={raw!r} is not a port number.") from None


def _cipher_key(data_dir: Path, service: str) -> str:
    """The key ``service``'s store is encrypted with at rest (``KRING_CIPHER_KEY``): made once
    in ``<data>/keys/<service>.key``, readable by this user only, kept with the data (deleting
    the folder deletes the key with it; a store without its key cannot be read)."""
    from shared.cipher import AESGCMCipher

    keys = data_dir / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    key_file = keys / f"{service}.key"
    if not key_file.exists():
        # Written aside and linked into place: a crash never leaves a half-written key, and a
        # key once made is never replaced.
        draft = keys / f".{service}.key.{os.getpid()}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(AESGCMCipher.create_key(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(draft, key_file)
        draft.unlink()
    key = key_file.read_text(encoding="ascii", errors="replace").strip()
    try:
        AESGCMCipher.of_key(key)
    except ValueError:
        raise StartupError(
            f"{key_file} does not hold a cipher key (a base64 AES key). Restore it from your "
            "backup; without it the store cannot be read."
        ) from None
    return key


def _check_ports(host: str, nats_port: int, ports: dict[str, int]) -> None:
    """Fail before starting anything, naming the port and what it was meant for."""
    wanted = [(nats_port, "NATS", "kring run --nats-port")]
    wanted += [
        (ports[name], f"{name} HTTP API", f"set {var}")
        for name, var, _ in (*SERVICES, ISSUER, CONSOLE)
        if name in ports
    ]
    for port, purpose, remedy in wanted:
        if not _port_free(host, port):
            raise StartupError(
                f"port {port} ({purpose}) is in use: is Kring already running? "
                f"Stop whatever holds it, or choose another port ({remedy})."
            )


def _port_free(host: str, port: int) -> bool:
    """Bind without SO_REUSEADDR. A refusal with nothing accepting connections is only a closed
    connection lingering in TIME_WAIT (common right after a restart); the servers set
    SO_REUSEADDR and bind past it, so that counts as free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        try:
            probe.bind((host, port))
            return True
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise StartupError(f"cannot use {host}:{port}: {error.strerror}") from None
    return not _accepts(host, port)


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _nats_binary() -> str:
    try:
        return nats_server_binary()
    except NatsServerNotFoundError as error:
        raise StartupError(str(error)) from None


def _nats_config(data_dir: Path, nats_port: int, host: str, passwords: dict[str, str]) -> Path:
    nats_dir = data_dir / "nats"
    return write_server_config(
        nats_dir / "nats.conf",
        listen=_netloc(host, nats_port),
        store_dir=nats_dir / "jetstream",
        passwords=passwords,
    )


def _start_nats(data_dir: Path, nats_port: int, host: str, passwords: dict[str, str]) -> Child:
    binary = _nats_binary()
    conf = _nats_config(data_dir, nats_port, host, passwords)
    log_path = _log_path(data_dir, "nats")
    with log_path.open("ab") as log:
        log.write(_banner())
        log.flush()
        process = subprocess.Popen(
            [binary, "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child("nats-server", process)


def _wait_nats(nats: Child, data_dir: Path, nats_port: int, host: str) -> None:
    log_path = _log_path(data_dir, "nats")
    deadline = time.monotonic() + NATS_START_SECONDS
    while not _accepts(host, nats_port):
        if nats.process.poll() is not None:
            raise StartupError(
                f"nats-server exited with code {nats.process.returncode} while starting. "
                f"End of {log_path}:\n{_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            raise StartupError(
                f"nats-server did not accept connections on port {nats_port} within "
                f"{NATS_START_SECONDS:.0f} s. End of {log_path}:\n{_tail(log_path)}"
            )
        time.sleep(0.1)


def _start_service(
    name: str, data_dir: Path, env: dict[str, str], module: str | None = None
) -> Child:
    process = subprocess.Popen(
        [sys.executable, "-m", module or f"services.{name}.main"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    child = Child(name, process)
    reader = threading.Thread(
        target=_forward, args=(name, process, _log_path(data_dir, name)), daemon=True
    )
    reader.start()
    child.readers.append(reader)
    return child


def _forward(name: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Each line to the terminal, prefixed, and to the service's log file."""
    assert process.stdout is not None
    with log_path.open("ab") as log:
        log.write(_banner())
        log.flush()
        for raw in process.stdout:
            log.write(raw)
            log.flush()
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            with contextlib.suppress(OSError):  # a closed terminal must not stop the log file
                _out(f"{name:<12}| {line}")


def _wait_healthy(host: str, ports: dict[str, int], supervisor: Supervisor) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    deadline = time.monotonic() + HEALTH_SECONDS
    for name, port in ports.items():
        url = f"http://{_netloc(host, port)}/health/live"
        while not _answers(opener, url):
            supervisor.step()
            if time.monotonic() > deadline:
                raise StartupError(
                    f"{name} did not answer {url} within {HEALTH_SECONDS:.0f} s; stopping "
                    "everything. Its log is above."
                )
            time.sleep(0.2)


def _answers(opener: urllib.request.OpenerDirector, url: str) -> bool:
    try:
        with opener.open(url, timeout=1.0) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _print_summary(
    data_dir: Path,
    nats_port: int,
    host: str,
    ports: dict[str, int],
    issuer: str,
    console_env: dict[str, str],
) -> None:
    lines = [
        f"Kring is running (data in {data_dir})",
        f"  {'console':<14}{console_env['KRING_CONSOLE_URL']}   open it in a browser and sign in",
        f"  {'NATS':<14}nats://{_netloc(host, nats_port)}   one user per process;"
        f" passwords in {keys_dir(data_dir)}",
        f"  {'issuer':<14}{issuer}   sign in: kring login --as NAME --role ROLE",
    ]
    for name, port in ports.items():
        base = f"http://{_netloc(host, port)}"
        lines.append(f"  {name:<14}{base:<24}docs {base}/docs   asyncapi {base}/asyncapi.json")
    lines.append("Try `make demo` in another terminal. Ctrl-C stops everything.")
    _out("\n".join(lines))


def _stop(children: list[Child]) -> None:
    """SIGTERM all at once so they drain in parallel; SIGKILL what outlives the grace period."""
    for child in children:
        _signal(child, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for child in children:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _err(f"{child.name} did not stop within {STOP_SECONDS:.0f} s; killing it.")
            _signal(child, signal.SIGKILL)
            child.process.wait()
    for child in children:
        for reader in child.readers:
            reader.join(timeout=2.0)


def _signal(child: Child, signum: signal.Signals) -> None:
    """The whole process group, so nothing a child started is left behind."""
    if child.process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.process.pid, signum)


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM (and SIGHUP: the terminal closed) stop Kring like Ctrl-C; the children live in
    their own sessions and would otherwise outlive us."""
    with _handlers(_interrupt):
        yield


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """A second Ctrl-C while stopping must not abandon the children half-stopped."""
    with _handlers(signal.SIG_IGN, signal.SIGINT):
        yield


@contextlib.contextmanager
def _handlers(
    handler: Callable[[int, FrameType | None], Any] | int,
    *signums: signal.Signals,
) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; the caller handles signals then
        return
    wanted = signums or (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, handler) for signum in wanted}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _log_path(data_dir: Path, name: str) -> Path:
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs / f"{name}.log"


def _banner() -> bytes:
    return f"--- kring run started {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _out(message: str) -> None:
    with _print_lock:
        print(message, flush=True)


def _err(message: str) -> None:
    with _print_lock:
        print(message, file=sys.stderr, flush=True)
