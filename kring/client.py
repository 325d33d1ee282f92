"""Talking to the running services over HTTP, as any client would."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import httpx
import nats
from nats.aio.client import Client as NatsClient

from shared.actor import ACTOR_HEADER, ROLE_HEADER

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


async def _no_traceback(error: Exception) -> None:
    """nats-py prints a traceback for every failed connect unless given an error callback; the
    CLI says what went wrong in one sentence instead."""


async def connect_nats(nats_url: str) -> NatsClient:
    """A short-lived connection for a CLI command: fail fast, never print a traceback.

    (``max_reconnect_attempts=0`` would try forever in nats-py 2.16: only a positive limit
    ever drops a server from the pool.)"""
    connecting = nats.connect(
        nats_url,
        connect_timeout=3,
        max_reconnect_attempts=1,
        reconnect_time_wait=0.5,
        allow_reconnect=False,
        error_cb=_no_traceback,
    )
    return await asyncio.wait_for(connecting, 10)
