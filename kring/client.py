"""Talking to the running services over HTTP, as any client would: with a bearer token.

The CLI signs in with ``kring login`` (the development issuer's dev-login grant) and keeps the
token in ``KRING_TOKEN_FILE`` (default ``~/.config/kring/token``, readable by this user only);
``KRING_TOKEN`` names one directly. The workflow, the demo, the tests and the benchmark ask a
``DevLogin`` for a token per person they act as.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client as NatsClient

from kring.natsconf import keys_dir, read_password
from shared.nats_tls import tls_context
from shared.permissions import ANALYST, inbox_prefix
from shared.settings import SECRETS_DIR_VARIABLE
from shared.stream_read import ReaderClient

SERVICES = ("intake", "coordination", "plans", "followup")
DEFAULT_PORTS = {
    "intake": 8001,
    "coordination": 8002,
    "plans": 8003,
    "followup": 8004,
    "partners": 8006,
}
DEV_LOGIN = "urn:kring:params:oauth:grant-type:dev-login"
#: Rows asked per page when the CLI reads a whole list (the services' maximum).
LIST_PAGE = 500
#: The services whose case lists filter by region (the others do not know it on every row).
REGIONAL_LISTS = ("intake", "coordination")


class ServiceUnavailableError(RuntimeError):
    pass


class AccessError(RuntimeError):
    """Not signed in, the token expired, or the caller may not do this (the reason says)."""


def service_url(name: str) -> str:
    """``KRING_<NAME>_URL``, else the address ``make run`` serves it on."""
    return os.environ.get(
        f"KRING_{name.upper()}_URL", f"http://127.0.0.1:{DEFAULT_PORTS[name]}"
    ).rstrip("/")


def issuer_url() -> str:
    return os.environ.get("KRING_ISSUER_URL", "http://127.0.0.1:8005").rstrip("/")


def token_file() -> Path:
    named = os.environ.get("KRING_TOKEN_FILE")
    if named:
        return Path(named)
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "kring" / "token"


def save_token(token: str) -> Path:
    """Keep the CLI's token, readable by this user only."""
    path = token_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token)
    os.chmod(path, 0o600)
    return path


def load_token() -> str | None:
    if os.environ.get("KRING_TOKEN"):
        return os.environ["KRING_TOKEN"].strip()
    try:
        return token_file().read_text().strip() or None
    except OSError:
        return None


def audit_line(entry: dict[str, Any]) -> str:
    """One history entry as a line: time, service, aggregate.event, actor (role)."""
    actor = entry.get("actor") or {}
    event = f"{entry['aggregate']}.{entry['type']}"
    who = f"{actor.get('name') or actor.get('id', '?')} ({actor.get('role', '?')})"
    if actor.get("on_behalf_of"):
        who += f" for {actor['on_behalf_of']}"
    return f"{entry['time']:<33} {entry['service']:<13} {event:<42} {who}"


def access_line(entry: dict[str, Any]) -> str:
    """One recorded read as a line: time, service, who (role), what."""
    who = f"{entry.get('name') or entry['subject']} ({entry['role']})"
    if entry.get("on_behalf_of"):
        who += f" for {entry['on_behalf_of']}"
    return f"{entry['at']:<33} {entry['service']:<13} {who:<48} {entry['what']}"


@dataclass(frozen=True)
class Who:
    """A person (or client) to act as: what a development sign-in says about them."""

    name: str
    roles: tuple[str, ...]
    regions: tuple[str, ...] = ()
    coordinator: str | None = None
    organisation: str | None = None
    participant: tuple[str, ...] = ()

    def form(self) -> dict[str, Any]:
        form: dict[str, Any] = {"grant_type": DEV_LOGIN, "name": self.name, "role": self.roles}
        if self.regions:
            form["region"] = list(self.regions)
        if self.coordinator:
            form["coordinator"] = self.coordinator
        if self.organisation:
            form["organisation"] = self.organisation
        if self.participant:
            form["participant"] = list(self.participant)
        return form


class DevLogin:
    """Tokens from the development issuer, one per person, kept until a minute before they
    expire."""

    def __init__(self, issuer: str | None = None) -> None:
        self.issuer = (issuer or issuer_url()).rstrip("/")
        self._tokens: dict[Who, tuple[str, float]] = {}

    def _cached(self, who: Who) -> str | None:
        found = self._tokens.get(who)
        if found is not None and found[1] > time.monotonic():
            return found[0]
        return None

    def _keep(self, who: Who, answer: httpx.Response) -> str:
        if answer.status_code != 200:
            raise AccessError(f"the issuer refused a token for {who.name}: {answer.text[:200]}")
        body = answer.json()
        lifetime = float(body.get("expires_in", 300))
        self._tokens[who] = (body["access_token"], time.monotonic() + max(lifetime - 60, 5))
        return str(body["access_token"])

    def _unreachable(self, error: Exception) -> ServiceUnavailableError:
        return ServiceUnavailableError(
            f"the issuer does not answer at {self.issuer} ({type(error).__name__}). "
            "Is Kring running (`make run`)?"
        )

    def token_sync(self, who: Who) -> str:
        cached = self._cached(who)
        if cached:
            return cached
        try:
            answer = httpx.post(f"{self.issuer}/token", data=who.form(), timeout=10)
        except httpx.TransportError as error:
            raise self._unreachable(error) from None
        return self._keep(who, answer)

    async def token(self, who: Who) -> str:
        cached = self._cached(who)
        if cached:
            return cached
        async with httpx.AsyncClient(timeout=10) as http:
            try:
                answer = await http.post(f"{self.issuer}/token", data=who.form())
            except httpx.TransportError as error:
                raise self._unreachable(error) from None
        return self._keep(who, answer)

    async def headers(self, who: Who) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(who)}"}


class KringClient:
    """The CLI's calls, with the signed-in token (``kring login``)."""

    def __init__(self, timeout: float = 10.0, token: str | None = None) -> None:
        self.http = httpx.Client(timeout=timeout)
        self.token = token or load_token()

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        if not self.token:
            raise AccessError(
                "not signed in: run `kring login --as NAME --role ROLE`"
                f" (the token is kept in {token_file()})"
            )
        url = service_url(service) + path
        try:
            response = self.http.request(
                method,
                url,
                json=json,
                params=params,
                headers={"Authorization": f"Bearer {self.token}"},
            )
        except httpx.TransportError as error:
            raise ServiceUnavailableError(
                f"{service} does not answer at {service_url(service)} ({type(error).__name__}). "
                "Is Kring running (`make run`)?"
            ) from None
        if response.status_code == 401:
            raise AccessError(
                f"{service} does not accept the token ({detail_of(response)}): "
                "run `kring login` again"
            )
        return response

    def picture(self, case_id: str) -> dict[str, dict[str, Any]]:
        """What each service knows of the case now (services that do not know it are left out;
        one the caller may not read says why)."""
        views: dict[str, dict[str, Any]] = {}
        for service in SERVICES:
            response = self.request(service, "GET", f"/cases/{case_id}")
            if response.status_code == 404:
                continue
            if response.status_code == 410:  # erased: nothing of it can be read any more
                views[service] = {"case_id": case_id, "erased": detail_of(response)}
                continue
            if response.status_code == 403:
                views[service] = {"case_id": case_id, "not_permitted": detail_of(response)}
                continue
            response.raise_for_status()
            views[service] = response.json()
        return views

    def lists(
        self, *, model: str | None = None, region: str | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """Each service's own list of the cases the caller may see (``GET /cases``), every page
        of it. ``model`` is asked of every service, ``region`` of those that know it (intake,
        coordination): both mean the same there as in the merged list."""
        rows: dict[str, list[dict[str, Any]]] = {}
        refusals = []
        for service in SERVICES:
            params = {"limit": str(LIST_PAGE)}
            if model:
                params["model"] = model
            if region and service in REGIONAL_LISTS:
                params["region"] = region
            found = self.pages(service, "/cases", params)
            if isinstance(found, str):
                refusals.append(f"{service}: {found}")
                continue
            rows[service] = found
        if not rows:
            raise AccessError("; ".join(refusals))
        return rows

    def pages(self, service: str, path: str, params: dict[str, str]) -> list[dict[str, Any]] | str:
        """Every row of a paged list, following each page's ``next``; the refusal if the caller
        may not read it."""
        rows: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            asked = params | ({"after": after} if after else {})
            response = self.request(service, "GET", path, params=asked)
            if response.status_code == 403:
                return detail_of(response)
            response.raise_for_status()
            page = response.json()
            rows.extend(page["items"])
            after = page.get("next")
            if not after:
                return rows

    def history(self, case_id: str) -> list[dict[str, Any]]:
        """Every stored event of the case across the services the caller may read, in order."""
        return self._gather(case_id, "history", lambda e: (e["time"], e["service"], e["version"]))

    def access_log(self, case_id: str) -> list[dict[str, Any]]:
        """Every recorded read of the case across the services, in time order."""
        return self._gather(case_id, "access-log", lambda e: (e["at"], e["service"]))

    def _gather(
        self, case_id: str, what: str, order: Callable[[dict[str, Any]], Any]
    ) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        refusals = []
        for service in SERVICES:
            after: str | None = None
            while True:
                params = {"limit": str(LIST_PAGE)} | ({"after": after} if after else {})
                response = self.request(service, "GET", f"/cases/{case_id}/{what}", params=params)
                if response.status_code in (404, 410):
                    break
                if response.status_code == 403:
                    refusals.append(f"{service}: {detail_of(response)}")
                    break
                response.raise_for_status()
                found = response.json()
                if isinstance(found, list):  # one case's history: read whole
                    entries.extend(found)
                    break
                entries.extend(found["items"])  # the access log: a page at a time
                after = found.get("next")
                if not after:
                    break
        if not entries and refusals:
            raise AccessError("; ".join(refusals))
        return sorted(entries, key=order)


def detail_of(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", ""))[:300]
    except ValueError:
        return response.text[:300]


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


def nats_tls(nats_url: str) -> ssl.SSLContext | None:
    """TLS as the services use it: ``KRING_NATS_TLS_CA_FILE`` (a PEM bundle of the
    deployment's own CA), else the system's CAs for ``tls://`` URLs."""
    named = os.environ.get("KRING_NATS_TLS_CA_FILE")
    try:
        return tls_context(nats_url, Path(named) if named else None)
    except (OSError, ssl.SSLError):
        raise NatsCredentialsError(
            f"KRING_NATS_TLS_CA_FILE: {named} is not a readable PEM file of CA certificates"
        ) from None


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
    tls = nats_tls(nats_url)
    connecting = client.connect(
        nats_url,
        user=user,
        password=password,
        tls=tls,
        inbox_prefix=inbox_prefix(user),
        connect_timeout=3,
        max_reconnect_attempts=1,
        reconnect_time_wait=1,
        allow_reconnect=False,
        error_cb=_no_traceback(user),
    )
    await asyncio.wait_for(connecting, 10)
    return client
