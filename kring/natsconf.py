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
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import bcrypt

from shared.permissions import names, render_authorization

BCRYPT_COST = 6
MIN_PASSWORD_LENGTH = 32
PASSWORD_SUFFIX = ".password"  # noqa: S105 - a file name


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


def read_credentials(directory: Path) -> dict[str, str]:
    """Every identity's password from ``directory``; raise ``CredentialsError`` naming what is
    missing or too short."""
    passwords = {}
    for identity in names():
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


def write_authorization(path: Path, block: str) -> Path:
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
) -> str:
    """nats-server's whole configuration. ``passwords=None`` is the open server Kring ran before
    it had identities, kept only for tests that plant what a closed server refuses."""
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
        "jetstream {\n"
        f"  store_dir: {quote(store_dir)}\n"
        f"{sync}"
        "}\n"
    )
    if passwords is not None:
        text += render(passwords)
    return text


def write_server_config(
    path: Path,
    *,
    listen: str,
    store_dir: Path,
    passwords: Mapping[str, str] | None,
    sync_always: bool = True,
) -> Path:
    """Write ``server_config(...)`` to ``path``, readable by this user only (it names the
    identities and their hashes)."""
    text = server_config(
        listen=listen, store_dir=store_dir, passwords=passwords, sync_always=sync_always
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)
    return path


def quote(path: Path) -> str:
    escaped = str(path).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
