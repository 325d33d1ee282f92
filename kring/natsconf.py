"""NATS credentials and nats-server's configuration, for ``kring run``, the tests and the bench
alike (one piece of code, so the tests run against the configuration a user gets).

Each identity of ``shared.permissions`` has a password: 32 random bytes, made once, kept in
``<data>/keys/nats/<identity>.password`` (0600, folder 0700). The server's configuration, written
at every start, holds only their bcrypt hashes (nats-server checks a password against its hash at
each connection).

Why bcrypt at cost 6, not the 10 to 12 one uses for people's passwords: the cost makes guessing a
*weak* password slow. These are 256-bit random secrets, beyond guessing at any cost, while the
cost is paid by nats-server on every connection (each CLI command, each test's reader): at
cost 11 that is 150 ms of server CPU per connection on a two-core machine, at 6 about 5 ms.
``render`` refuses a password shorter than 32 characters for the same reason: a deployment's
passwords come from ``kring nats-credentials`` (or are as long and as random).

Partners come and go: ``kring partners add`` makes ``partner-<organisation>.password`` in the same
folder, ``revoke`` removes it, ``rotate`` replaces it. The authorization block is its own file,
included by the server's configuration, so it can be written again while the server runs and the
server told to reload it (``reload``): nats-server then applies the new users and rights to the
connections it has, dropping any whose credentials no longer hold, with no restart.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import signal
import socket
import time
from collections.abc import Mapping
from pathlib import Path

import bcrypt

from shared.permissions import names, partner_identity_name, partners_of, render_authorization

BCRYPT_COST = 6
MIN_PASSWORD_LENGTH = 32
PASSWORD_SUFFIX = ".password"  # noqa: S105 - a file name
AUTHORIZATION_FILE = "authorization.conf"
PID_FILE = "nats.pid"


class CredentialsError(Exception):
    """Credentials that are missing or unusable; the message says which and what to do."""


def keys_dir(data_dir: Path) -> Path:
    """Where ``kring run`` keeps the NATS passwords of a data folder."""
    return data_dir / "keys" / "nats"


def password_file(directory: Path, identity: str) -> Path:
    return directory / f"{identity}{PASSWORD_SUFFIX}"


def ensure_credentials(directory: Path) -> dict[str, str]:
    """Every identity's password, making the missing ones (readable by this user only)."""
    # The folders above it too (``<data>/keys`` holds other keys): made for this user only.
    for folder in reversed([directory, *directory.parents]):
        if not folder.exists():
            folder.mkdir(mode=0o700)
    directory.chmod(0o700)
    for identity in names():
        path = password_file(directory, identity)
        if path.exists():
            continue
        # Created 0600 before anything is written into it.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    return read_credentials(directory)


def partner_passwords(directory: Path) -> list[str]:
    """The identities of the partners whose passwords ``directory`` holds."""
    found = [p.name[: -len(PASSWORD_SUFFIX)] for p in directory.glob(f"partner-*{PASSWORD_SUFFIX}")]
    try:
        partners = partners_of(found)
    except ValueError as error:
        raise CredentialsError(f"{directory}: {error}") from None
    return [partner_identity_name(organisation) for organisation in partners]


def make_password(directory: Path, identity: str, *, replace: bool = False) -> str:
    """``identity``'s password in ``directory``: kept if there is one (unless ``replace``),
    else made (0600, written aside and moved into place, so a reader never sees half of it)."""
    path = password_file(directory, identity)
    if path.exists() and not replace:
        return read_password(directory, identity) or ""
    draft = directory / f".{identity}{PASSWORD_SUFFIX}.{os.getpid()}"
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    password = secrets.token_urlsafe(32)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(password + "\n")
    draft.replace(path)
    return password


def remove_password(directory: Path, identity: str) -> bool:
    """Forget ``identity``'s password; False if there was none."""
    try:
        password_file(directory, identity).unlink()
    except FileNotFoundError:
        return False
    return True


def read_credentials(directory: Path) -> dict[str, str]:
    """Every identity's password from ``directory`` (the fixed ones and each partner's); raise
    ``CredentialsError`` naming what is missing or too short."""
    passwords = {}
    for identity in [*names(), *partner_passwords(directory)]:
        path = password_file(directory, identity)
        try:
            password = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise CredentialsError(
                f"no NATS password for {identity}: {path} is missing "
                f"(`kring nats-credentials {directory}` makes every missing one)"
            ) from None
        except OSError as error:
            raise CredentialsError(f"cannot read {path}: {error.strerror}") from None
        if len(password) < MIN_PASSWORD_LENGTH:
            raise CredentialsError(
                f"the NATS password in {path} is shorter than {MIN_PASSWORD_LENGTH} characters "
                f"(`kring nats-credentials` makes random ones)"
            )
        passwords[identity] = password
    return passwords


def read_password(directory: Path, identity: str) -> str | None:
    """One identity's password, if ``directory`` holds it."""
    try:
        return password_file(directory, identity).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


@functools.lru_cache(maxsize=256)
def hash_password(password: str) -> str:
    """bcrypt, cost ``BCRYPT_COST``. Cached: a test session starts many servers on one set of
    passwords, and a fresh salt each time would buy nothing."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()


def render(passwords: Mapping[str, str]) -> str:
    """The ``authorization`` block for these passwords (identity → password)."""
    short = [name for name, pw in passwords.items() if len(pw) < MIN_PASSWORD_LENGTH]
    if short:
        raise CredentialsError(
            f"NATS password(s) shorter than {MIN_PASSWORD_LENGTH} characters: {', '.join(short)}"
        )
    return render_authorization({name: hash_password(pw) for name, pw in passwords.items()})


def write_shared_authorization(path: Path, block: str) -> Path:
    """Write an ``authorization`` block for NATS nodes that run as another user (a deployment's
    shared volume or Secret): readable by all, as it holds hashes and permissions, never a
    password. Replaced in one step, so a node reloading its config never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(block)
    partial.chmod(0o644)
    partial.replace(path)
    return path


def server_config(
    *,
    listen: str,
    store_dir: Path,
    passwords: Mapping[str, str] | None,
    sync_always: bool = True,
    authorization_file: str | None = None,
    pid_file: Path | None = None,
) -> str:
    """nats-server's whole configuration. ``passwords=None`` is the open server Kring ran before
    it had identities, kept only for tests that plant what a closed server refuses. With
    ``authorization_file`` (a name beside the configuration) the authorization block is included
    from there instead of written inline (``write_server_config`` writes it)."""
    sync = (
        "  # Fsync each write before acknowledging it: an event NATS has acked survives a crash\n"
        "  # or power cut of the machine, not just of nats-server. Slower, and worth it here.\n"
        "  sync_interval: always\n"
        if sync_always
        else ""
    )
    text = (
        "# Written by Kring at every start; edits here are overwritten.\n"
        f'listen: "{listen}"\n'
        + (f"pid_file: {quote(pid_file)}\n" if pid_file is not None else "")
        + "jetstream {\n"
        f"  store_dir: {quote(store_dir)}\n"
        f"{sync}"
        "}\n"
    )
    if passwords is not None:
        if authorization_file is not None:
            # Written again (with a partner added or gone) and reloaded while the server runs.
            text += f"include {quote(Path(authorization_file))}\n"
        else:
            text += render(passwords)
    return text


def write_server_config(
    path: Path,
    *,
    listen: str,
    store_dir: Path,
    passwords: Mapping[str, str] | None,
    sync_always: bool = True,
    separate_authorization: bool = True,
) -> Path:
    """Write ``server_config(...)`` to ``path`` and, by default, the authorization block beside
    it (``authorization.conf``, which ``write_authorization`` writes again for a reload), with a
    pid file beside them (``nats.pid``, for ``reload``); readable by this user only (they name
    the identities and their hashes)."""
    separate = separate_authorization and passwords is not None
    text = server_config(
        listen=listen,
        store_dir=store_dir,
        passwords=passwords,
        sync_always=sync_always,
        authorization_file=AUTHORIZATION_FILE if separate else None,
        pid_file=path.parent / PID_FILE,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if separate and passwords is not None:
        write_authorization(path.parent / AUTHORIZATION_FILE, passwords)
    _write_private(path, text)
    return path


def write_authorization(path: Path, passwords: Mapping[str, str]) -> Path:
    """The authorization block for ``passwords``, written aside and moved into place (a server
    reloading at that moment reads the old file or the new one, never half of one)."""
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    _write_private(draft, render(passwords))
    draft.replace(path)
    return path


def reload(config_dir: Path) -> bool:
    """Tell the nats-server whose pid file is in ``config_dir`` to read its configuration again
    (SIGHUP: nats-server's reload). False if no server of this folder is running."""
    try:
        pid = int((config_dir / PID_FILE).read_text(encoding="ascii").strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError):
        return False
    return True


#: How long a command waits for the running server to apply a reload.
RELOAD_SECONDS = 10.0


def await_reload(config_dir: Path, identity: str, password: str | None) -> bool:
    """nats-server applies a reload after the signal has been sent, not before ``reload``
    returns: until then it still refuses what the new block allows (the partners service,
    told of a new partner at once, would be refused that partner's feed). Waits until
    ``identity`` signs in with ``password`` on the server of ``config_dir`` (``None``: until
    it is refused); False if that did not happen in time or no address is known."""
    address = _listen_address(config_dir / "nats.conf")
    if address is None:
        return False
    deadline = time.monotonic() + RELOAD_SECONDS
    while time.monotonic() < deadline:
        accepted = _signs_in(address, identity, password or "")
        if accepted is (password is not None):
            return True
        time.sleep(0.05)
    return False


def _listen_address(config: Path) -> tuple[str, int] | None:
    try:
        text = config.read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith('listen: "'):
            host, _, port = line.split('"')[1].rpartition(":")
            return host.strip("[]"), int(port)
    return None


def _signs_in(address: tuple[str, int], identity: str, password: str) -> bool | None:
    """Whether the server takes ``identity`` with ``password`` (NATS's CONNECT, then PING:
    PONG, or an authorization error); None if it could not be asked."""
    connect = {"user": identity, "pass": password, "verbose": False, "pedantic": False}
    try:
        with socket.create_connection(address, timeout=2) as connection:
            connection.recv(4096)  # its INFO
            connection.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
            answer = connection.recv(4096)
    except OSError:
        return None
    return answer.startswith(b"PONG")


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)


def quote(path: Path) -> str:
    escaped = str(path).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
