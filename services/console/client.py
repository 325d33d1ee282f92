"""Every call the console makes to the four services, in one place, each with the signed-in
person's own token: the services decide who may, and the console shows what they answer.

The console never reads a store. What a service answers becomes a typed error here, once
(``ServiceError`` and its kinds), so a page shows a refusal as a message and never a trace.
Lists are read whole: today a service answers a JSON array; a paginated one (``{"items",
"next", "total"}`` with ``?limit=&after=``) is followed page by page, so the pages above do not
change when the services do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx

from shared.logging import get_logger

log = get_logger(__name__)

#: A list is read in pages of this size, and never more than this many pages.
PAGE_LIMIT = 500
MAX_PAGES = 40

Json = Any
Params = Mapping[str, str | Sequence[str]]


@dataclass
class ServiceError(Exception):
    """A service answered no, or not at all. ``detail`` is its reason, fit to show."""

    service: str
    status: int
    detail: str
    #: For 422: each field named (its location) with what is wrong.
    fields: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return self.detail


class SignedOutError(ServiceError):
    """401: the token is no longer accepted (expired, or the issuer's key changed)."""


class RefusedError(ServiceError):
    """403: the person may not do this here; the detail says what is missing."""


class NotFoundError(ServiceError):
    """404: the service does not know it (perhaps not yet: events take a moment)."""


class GoneError(ServiceError):
    """410: the case was erased."""


class ConflictError(ServiceError):
    """409: a rule of the case's stage or model refuses it; the detail is the rule."""


class InvalidError(ServiceError):
    """422: invalid input, by field."""


class UnavailableError(ServiceError):
    """The service does not answer, or answers 5xx."""


KINDS: dict[int, type[ServiceError]] = {
    401: SignedOutError,
    403: RefusedError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    422: InvalidError,
}


def _error(service: str, response: httpx.Response) -> ServiceError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = body.get("detail") if isinstance(body, dict) else None
    fields: list[tuple[str, str]] = []
    if isinstance(detail, list):
        for entry in detail:
            if isinstance(entry, dict):
                loc = [str(p) for p in entry.get("loc", []) if p not in ("body", "query")]
                fields.append((".".join(loc), str(entry.get("msg", ""))))
        detail = "; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in fields)
    text = str(detail or f"{service} answered {response.status_code}")[:500]
    kind = KINDS.get(response.status_code)
    if kind is None:
        kind = UnavailableError if response.status_code >= 500 else ServiceError
    return kind(service, response.status_code, text, fields)


class Services:
    """The four services' HTTP APIs, called as the signed-in person."""

    def __init__(self, urls: Mapping[str, str], timeout: float = 10.0) -> None:
        self.urls = dict(urls)
        self.http = httpx.AsyncClient(timeout=timeout, trust_env=False)

    async def close(self) -> None:
        await self.http.aclose()

    # -- the transport ---------------------------------------------------------------------
    async def _call(
        self,
        service: str,
        method: str,
        path: str,
        token: str,
        *,
        json: Json = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        try:
            response = await self.http.request(
                method,
                self.urls[service] + path,
                json=json,
                params=params,
                headers={"Authorization": f"Bearer {token}", **(headers or {})},
            )
        except httpx.TransportError as error:
            log.warning("console.service_unreachable", service=service, error=type(error).__name__)
            raise UnavailableError(service, 503, f"{service} does not answer") from None
        if response.status_code >= 400:
            failure = _error(service, response)
            if isinstance(failure, UnavailableError):
                log.warning("console.service_failed", service=service, status=failure.status)
            raise failure
        return response

    async def _json(self, service: str, method: str, path: str, token: str, **options: Any) -> Json:
        response = await self._call(service, method, path, token, **options)
        return response.json() if response.content else None

    async def _list(
        self, service: str, path: str, token: str, params: Params | None = None
    ) -> list[dict[str, Any]]:
        """A whole list: an array, or every page of a paginated answer."""
        query: dict[str, str | Sequence[str]] = dict(params or {})
        answer = await self._json(service, "GET", path, token, params=query)
        if isinstance(answer, list):
            return answer
        items: list[dict[str, Any]] = list(answer.get("items", []))
        for _ in range(MAX_PAGES):
            cursor = answer.get("next")
            if not cursor:
                break
            query |= {"after": str(cursor), "limit": str(PAGE_LIMIT)}
            answer = await self._json(service, "GET", path, token, params=query)
            items.extend(answer.get("items", []))
        return items

    # -- intake: the request ----------------------------------------------------------------
    async def submit(self, token: str, body: Json, key: str) -> Json:
        return await self._json(
            "intake", "POST", "/cases", token, json=body, headers={"Idempotency-Key": key}
        )

    async def requests(self, token: str, **filters: str) -> list[dict[str, Any]]:
        return await self._list("intake", "/cases", token, _only(filters))

    async def request(self, token: str, case_id: UUID) -> Json:
        return await self._json("intake", "GET", f"/cases/{case_id}", token)

    async def clarify(self, token: str, case_id: UUID, body: Json) -> Json:
        return await self._json("intake", "POST", f"/cases/{case_id}/clarify", token, json=body)

    async def accept(self, token: str, case_id: UUID) -> Json:
        return await self._json("intake", "POST", f"/cases/{case_id}/accept", token)

    async def informational_talk(self, token: str, case_id: UUID, body: Json) -> Json:
        return await self._json(
            "intake", "POST", f"/cases/{case_id}/informational-talk", token, json=body
        )

    async def withdraw(self, token: str, case_id: UUID, reason: str) -> Json:
        return await self._json(
            "intake", "POST", f"/cases/{case_id}/withdraw", token, json={"reason": reason}
        )

    # -- coordination: the pool --------------------------------------------------------------
    async def coordinators(self, token: str) -> list[dict[str, Any]]:
        return await self._list("coordination", "/coordinators", token)

    async def register_coordinator(self, token: str, body: Json) -> Json:
        return await self._json("coordination", "POST", "/coordinators", token, json=body)

    async def set_availability(
        self, token: str, coordinator_id: str, available: bool, until: str | None
    ) -> Json:
        body = {"available": available, "until": until or None}
        return await self._json(
            "coordination", "POST", f"/coordinators/{coordinator_id}/availability", token, json=body
        )

    # -- coordination: the case ----------------------------------------------------------------
    async def coordination_cases(self, token: str, **filters: str) -> list[dict[str, Any]]:
        return await self._list("coordination", "/cases", token, _only(filters))

    async def unassigned(self, token: str) -> list[dict[str, Any]]:
        return await self._list("coordination", "/cases/unassigned", token)

    async def coordination_case(self, token: str, case_id: UUID) -> Json:
        return await self._json("coordination", "GET", f"/cases/{case_id}", token)

    async def check_assignment(
        self, token: str, case_id: UUID, coordinator_ids: Sequence[str]
    ) -> Json:
        return await self._json(
            "coordination",
            "GET",
            f"/cases/{case_id}/assign/check",
            token,
            params={"coordinator_id": list(coordinator_ids)},
        )

    async def assign(
        self, token: str, case_id: UUID, coordinator_ids: Sequence[str], reason: str
    ) -> Json:
        body = {"coordinator_ids": list(coordinator_ids), "reason": reason}
        return await self._json(
            "coordination", "POST", f"/cases/{case_id}/assign", token, json=body
        )

    async def first_contact(self, token: str, case_id: UUID) -> Json:
        return await self._json("coordination", "POST", f"/cases/{case_id}/contact", token)

    async def invite(self, token: str, case_id: UUID, body: Json) -> Json:
        return await self._json(
            "coordination", "POST", f"/cases/{case_id}/participants", token, json=body
        )

    async def answer(
        self, token: str, case_id: UUID, participant_id: str, answer: str, body: Json
    ) -> Json:
        """``confirm``, ``decline`` or ``consent/withdraw`` for one participant."""
        path = f"/cases/{case_id}/participants/{participant_id}/{answer}"
        return await self._json("coordination", "POST", path, token, json=body)

    async def need_information(self, token: str, case_id: UUID, body: Json) -> Json:
        return await self._json(
            "coordination", "POST", f"/cases/{case_id}/information", token, json=body
        )

    async def arrange(self, token: str, case_id: UUID, body: Json) -> Json:
        return await self._json(
            "coordination", "PUT", f"/cases/{case_id}/arrangements", token, json=body
        )

    async def schedule(self, token: str, case_id: UUID, body: Json) -> Json:
        return await self._json(
            "coordination", "POST", f"/cases/{case_id}/schedule", token, json=body
        )

    async def hold_conference(self, token: str, case_id: UUID, body: Json) -> Json:
        return await self._json(
            "coordination", "POST", f"/cases/{case_id}/conference", token, json=body
        )

    async def end_without_conference(self, token: str, case_id: UUID, body: Json) -> Json:
        return await self._json("coordination", "POST", f"/cases/{case_id}/end", token, json=body)

    # -- plans ------------------------------------------------------------------------------
    async def plan_cases(self, token: str) -> list[dict[str, Any]]:
        return await self._list("plans", "/cases", token)

    async def plan(self, token: str, case_id: UUID) -> Json:
        return await self._json("plans", "GET", f"/cases/{case_id}/plan", token)

    async def name_recipients(self, token: str, case_id: UUID, body: Json) -> Json:
        return await self._json(
            "plans", "POST", f"/cases/{case_id}/plan/recipients", token, json=body
        )

    async def write_plan(self, token: str, case_id: UUID, body: Json) -> Json:
        return await self._json("plans", "POST", f"/cases/{case_id}/plan", token, json=body)

    async def accept_plan(self, token: str, case_id: UUID, version: int | str) -> Json:
        return await self._json(
            "plans", "POST", f"/cases/{case_id}/plan/accept", token, json={"version": version}
        )

    async def sign_off(self, token: str, case_id: UUID, body: Json) -> Json:
        return await self._json(
            "plans", "POST", f"/cases/{case_id}/plan/sign-off", token, json=body
        )

    async def name_signatory(
        self, token: str, case_id: UUID, requirement_id: str, body: Json
    ) -> Json:
        path = f"/cases/{case_id}/plan/requirements/{quote(requirement_id, safe='')}/signatory"
        return await self._json("plans", "POST", path, token, json=body)

    async def distribute(self, token: str, case_id: UUID, body: Json) -> Json:
        return await self._json(
            "plans", "POST", f"/cases/{case_id}/plan/distribute", token, json=body
        )

    async def hand_over(self, token: str, case_id: UUID, body: Json) -> Json:
        return await self._json(
            "plans", "POST", f"/cases/{case_id}/plan/deliveries", token, json=body
        )

    async def plan_document(
        self, token: str, case_id: UUID, kind: str, version: int | None
    ) -> tuple[bytes, str]:
        """A printable copy (``html`` or ``pdf``): its bytes and content type."""
        params = {"version": str(version)} if version else None
        response = await self._call(
            "plans", "GET", f"/cases/{case_id}/plan/document.{kind}", token, params=params
        )
        return response.content, response.headers.get("content-type", "application/octet-stream")

    # -- followup ---------------------------------------------------------------------------
    async def follow_ups(self, token: str, **filters: str) -> list[dict[str, Any]]:
        return await self._list("followup", "/cases", token, _only(filters))

    async def follow_up(self, token: str, case_id: UUID) -> Json:
        return await self._json("followup", "GET", f"/cases/{case_id}", token)

    async def record_outcome(self, token: str, case_id: UUID, body: Json) -> Json:
        return await self._json("followup", "POST", f"/cases/{case_id}/outcomes", token, json=body)

    async def record_meeting(self, token: str, case_id: UUID, body: Json) -> Json:
        return await self._json(
            "followup", "POST", f"/cases/{case_id}/next-meeting", token, json=body
        )

    async def record_ratings(self, token: str, case_id: UUID, body: Json) -> Json:
        return await self._json("followup", "POST", f"/cases/{case_id}/ratings", token, json=body)

    async def follow_up_conference(self, token: str, case_id: UUID, reason: str, key: str) -> Json:
        return await self._json(
            "followup",
            "POST",
            f"/cases/{case_id}/follow-up-conference",
            token,
            json={"reason": reason},
            headers={"Idempotency-Key": key},
        )

    # -- every service ----------------------------------------------------------------------
    async def case_in(self, service: str, token: str, case_id: UUID) -> Json:
        return await self._json(service, "GET", f"/cases/{case_id}", token)

    async def history(self, service: str, token: str, case_id: UUID) -> list[dict[str, Any]]:
        return await self._list(service, f"/cases/{case_id}/history", token)

    async def access_log(self, service: str, token: str, case_id: UUID) -> list[dict[str, Any]]:
        return await self._list(service, f"/cases/{case_id}/access-log", token)


def _only(filters: Mapping[str, str]) -> dict[str, str]:
    """The filters given, without the empty ones (a form's blank select)."""
    return {k: v for k, v in filters.items() if v}
