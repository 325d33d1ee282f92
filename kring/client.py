"""Talking to the running services over HTTP, as any client would."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client as NatsClient

from kring.natsconf import keys_dir, read_password
from shared.actor import ACTOR_HEADER, ROLE_HEADER
from shared.permissions import ANALYST, inbox_prefix
from shared.settings import SECRETS_DIR_VARIABLE
from shared.stream_read import ReaderClient

SERVICES = ("intake", "coordination", "plans", "followup")
DEFAULT_PORTS = {"intake": 8001, "coordination": 8002, "plans": 8003, "followup": 8004}


class ServiceUnavailableError(RuntimeError):
    pass


def service_url(name: str) -> str:
    """``KRING_<NAME>_URL``, else the address ``make run`` serves it on."""
    return os.environ.get(
        f"KRING_{name.upper()}_URL", f"http://127.0.0.1:{DEFAULT_PORTS[name]}"
    ).rstrip("/")


def audit_line(entry: dict[str, Any]) -> str:
    """One history entry as a line: time, service, aggregate.event, actor (role)."""
    actor = entry.get("actor") or {}
    event = f"{entry['aggregate']}.{entry['type']}"
    who = f"{actor.get('id', '?')} ({actor.get('role', '?')})"
    return f"{entry['time']:<33} {entry['service']:<13} {event:<42} {who}"


@dataclass(frozen=True)
class Caller:
    """Who the CLI acts as (every command names its actor)."""

    actor: str
    role: str

    def headers(self) -> dict[str, str]:
        return {ACTOR_HEADER: self.actor, ROLE_HEADER: self.role}


class KringClient:
    def __init__(self, timeout: float = 10.0) -> None:
        self.http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        caller: Caller | None = None,
        json: Any = None,
    ) -> httpx.Response:
        url = service_url(service) + path
        try:
            return self.http.request(
                method, url, json=json, headers=caller.headers() if caller else None
            )
        except httpx.TransportError as error:
            raise ServiceUnavailableError(
                f"{service} does not answer at {service_url(service)} ({type(error).__name__}). "
                "Is Kring running (`make run`)?"
            ) from None

    def picture(self, case_id: str) -> dict[str, dict[str, Any]]:
        """What each service knows of the case now (services that do not know it are left out)."""
        views: dict[str, dict[str, Any]] = {}
        for service in SERVICES:
            response = self.request(service, "GET", f"/cases/{case_id}")
            if response.status_code == 404:
                continue
            if response.status_code == 410:  # erased: nothing of it can be read any more
                views[service] = {"case_id": case_id, "erased": response.json()["detail"]}
                continue
            response.raise_for_status()
            views[service] = response.json()
        return views

    def lists(self) -> dict[str, list[dict[str, Any]]]:
        """Each service's own list of cases (``GET /cases``)."""
        rows: dict[str, list[dict[str, Any]]] = {}
        for service in SERVICES:
            response = self.request(service, "GET", "/cases")
            response.raise_for_status()
            rows[service] = response.json()
        return rows

    def history(self, case_id: str) -> list[dict[str, Any]]:
        """Every stored event of the case across the services, in time order."""
        entries: list[dict[str, Any]] = []
        for service in SERVICES:
            response = self.request(service, "GET", f"/cases/{case_id}/history")
            if response.status_code == 404:
                continue
            response.raise_for_status()
            entries.extend(response.json())
        return sorted(entries, key=lambda e: (e["time"], e["service"], e["version"]))


class NatsCredentialsError(RuntimeError):
    """No credentials to connect with; the message says where they were looked for."""


#: What NATS refused during the last command (``Permissions Violation …``), for its error line.
REFUSALS: list[str] = []


def nats_credentials(identity: str) -> tuple[str, str]:
    """Who the CLI connects as: ``KRING_NATS_USER`` / ``KRING_NATS_PASSWORD`` when set (the
    password also from ``KRING_SECRETS_DIR``), else ``identity`` with its password from the
    data folder ``kring run`` keeps (``KRING_DATA_DIR``, default ``data``)."""
    user = os.environ.get("KRING_NATS_USER")
    if user:
        password = os.environ.get("KRING_NATS_PASSWORD") or _secret_file("kring_nats_password")
        if not password:
            raise NatsCredentialsError(
                f"KRING_NATS_USER is {user!r} but KRING_NATS_PASSWORD is not set"
            )
        return user, password
    folder = keys_dir(Path(os.environ.get("KRING_DATA_DIR", "data")))
    password = read_password(folder, identity)
    if password is None:
        raise NatsCredentialsError(
            f"no NATS credentials for {identity}: set KRING_NATS_USER and KRING_NATS_PASSWORD, "
            f"or KRING_DATA_DIR to the data folder of `kring run` (looked in {folder})"
        )
    return identity, password


def _secret_file(name: str) -> str | None:
    folder = os.environ.get(SECRETS_DIR_VARIABLE)
    if not folder:
        return None
    try:
        return (Path(folder) / name).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _no_traceback(user: str) -> Callable[[Exception], Awaitable[None]]:
    """nats-py prints a traceback for every failed connect unless given an error callback; the
    CLI says what went wrong in one sentence instead. A refusal is kept for that sentence
    (nats-py gives it lower-cased)."""

    async def on_error(error: Exception) -> None:
        text = str(error).strip().removeprefix("nats: ")
        if "permissions violation" in text.lower():
            REFUSALS.append(f"user {user!r}: {text}")

    return on_error


async def connect_nats(
    nats_url: str, identity: str = ANALYST, *, password: str | None = None
) -> NatsClient:
    """A short-lived connection for a CLI command, as ``identity`` (with ``password``, or as
    ``nats_credentials`` finds it): fail fast, never print a traceback. The analyst, who only
    reads, unless told otherwise. Its client parses headers fast (``ReaderClient``): a CLI
    command mostly reads.

    (``max_reconnect_attempts=0`` would try forever in nats-py 2.16: only a positive limit
    ever drops a server from the pool.)"""
    user, password = (identity, password) if password else nats_credentials(identity)
    client = ReaderClient()
    connecting = client.connect(
        nats_url,
        user=user,
        password=password,
        inbox_prefix=inbox_prefix(user),
        connect_timeout=3,
        max_reconnect_attempts=1,
        reconnect_time_wait=1,
        allow_reconnect=False,
        error_cb=_no_traceback(user),
    )
    await asyncio.wait_for(connecting, 10)
    return client
