"""One case from request to follow-up, per model, through the public HTTP APIs only.

Used by the end-to-end tests, the fault suite and the benchmark, so all three drive the same steps.
Every step is safe to retry: submitting carries an ``Idempotency-Key``, and a command refused
because a service has not yet heard the event that makes it valid (404/409), or a service that is
restarting (503, connection refused), is tried again until ``patience`` runs out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx

from shared.actor import ACTOR_HEADER, ROLE_HEADER
from shared.events import ConferenceModel

REQUESTER = ("workflow-requester", "requester")
MANAGER = ("workflow-regional-manager", "regional_manager")
COORDINATOR = ("workflow-coordinator", "coordinator")

#: Answers that mean "not yet": the service has not heard the event, or is restarting.
RETRY_STATUSES = frozenset({404, 409, 502, 503, 504})
RETRY_ERRORS = (httpx.TransportError,)


class WorkflowError(RuntimeError):
    """A step was refused for good, or did not succeed within the patience given."""


@dataclass
class CaseRun:
    case_id: str
    model: ConferenceModel
    #: Seconds since the run started at which each step succeeded, by step name.
    steps: dict[str, float] = field(default_factory=dict)


def _headers(caller: tuple[str, str], key: str | None = None) -> dict[str, str]:
    headers = {ACTOR_HEADER: caller[0], ROLE_HEADER: caller[1]}
    if key:
        headers["Idempotency-Key"] = key
    return headers


async def call(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    caller: tuple[str, str],
    body: Any = None,
    *,
    key: str | None = None,
    patience: float = 60.0,
    retry_statuses: frozenset[int] = RETRY_STATUSES,
) -> Any:
    """One HTTP call, retried while the answer means "not yet"."""
    deadline = time.monotonic() + patience
    delay = 0.05
    while True:
        try:
            response = await http.request(
                method, url, headers=_headers(caller, key), json=body, timeout=10
            )
        except RETRY_ERRORS as error:
            failure = f"{method} {url}: {type(error).__name__}"
        else:
            if response.status_code < 400:
                return response.json() if response.content else None
            failure = f"{method} {url}: {response.status_code} {response.text[:300]}"
            if response.status_code not in retry_statuses:
                raise WorkflowError(failure)
        if time.monotonic() > deadline:
            raise WorkflowError(f"gave up after {patience:.0f} s: {failure}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


async def join_pool(
    http: httpx.AsyncClient,
    *,
    urls: Mapping[str, str],
    region: str,
    coordinators: int = 2,
    capacity: int = 50,
    languages: tuple[str, ...] = ("nl",),
    prefix: str = "coordinator",
) -> list[str]:
    """Register coordinators for a region (again is harmless: registration is an upsert)."""
    ids = [f"{prefix}-{region.lower()}-{n}" for n in range(1, coordinators + 1)]
    for coordinator_id in ids:
        await call(
            http,
            "POST",
            f"{urls['coordination']}/coordinators",
            MANAGER,
            {
                "coordinator_id": coordinator_id,
                "regions": [region],
                "languages": list(languages),
                "capacity": capacity,
            },
        )
    return ids


def request_body(model: ConferenceModel, region: str) -> dict[str, Any]:
    return {
        "requester": {"name": "Requester", "relation": "family"},
        "central_persons": ["Central person"],
        "model": model.value,
        "region": region,
        "languages": ["nl"],
        "description": "A first description of the question.",
    }


CLARIFICATION: dict[str, Any] = {
    "conference_questions": ["What does the family need, and who does what?"],
    "funding": {"payer": "municipality", "organisation": "Gemeente", "status": "approved"},
}


def conference_body(model: ConferenceModel) -> dict[str, Any]:
    """Attendance that keeps each model's rules: private family time only in ``family``."""
    if model is ConferenceModel.FAMILY:
        plan_making = {"family": 4}
    else:
        plan_making = {"family": 4, "professional": 1, "coordinator": 1}
    return {
        "held_on": date.today().isoformat(),
        "parts": ["information", "plan_making", "presentation"],
        "attendance": {
            "information": {"family": 4, "professional": 1, "coordinator": 1},
            "plan_making": plan_making,
            "presentation": {"family": 4, "professional": 1, "coordinator": 1},
        },
    }


PLAN: dict[str, Any] = {
    "agreements": [
        {"who": "father", "what": "takes the children to school", "when": "every weekday"},
        {"who": "aunt", "what": "calls every Sunday"},
    ],
    "watched_by": "grandmother",
    "if_something_does_not_work": "the aunt calls everyone together",
}

DISTRIBUTION: dict[str, Any] = {
    "recipients": [{"role": "central_person"}, {"role": "family"}],
    "shared_with_organisations": [],
}


Check = Callable[[dict[str, Any]], bool]


async def step(
    http: httpx.AsyncClient,
    url: str,
    caller: tuple[str, str],
    body: Any = None,
    *,
    state_url: str,
    done: Check,
    patience: float,
) -> None:
    """POST a command until it succeeds, or until ``state_url`` shows it already took effect (a
    retry after an answer lost to a crash meets a 409 for a command that did succeed)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            await call(http, "POST", url, caller, body, patience=0)
            return
        except WorkflowError as error:
            failure = error
        state = await _get(http, state_url)
        if state is not None and done(state):
            return
        if time.monotonic() > deadline:
            raise WorkflowError(f"gave up after {patience:.0f} s: {failure}")
        await asyncio.sleep(0.1)


async def run_case(
    http: httpx.AsyncClient,
    model: ConferenceModel,
    *,
    urls: Mapping[str, str],
    region: str,
    key: str,
    patience: float = 60.0,
) -> CaseRun:
    """Drive one case from request until followup has scheduled its contacts."""
    started = time.monotonic()
    intake, coordination, plans, followup = (
        urls["intake"],
        urls["coordination"],
        urls["plans"],
        urls["followup"],
    )
    # Only a refused submission is final; "not yet" does not apply to a new case.
    created = await call(
        http,
        "POST",
        f"{intake}/cases",
        REQUESTER,
        request_body(model, region),
        key=key,
        patience=patience,
        retry_statuses=frozenset({502, 503, 504}),
    )
    run = CaseRun(case_id=created["case_id"], model=model)
    case = run.case_id

    def mark(name: str) -> None:
        run.steps[name] = time.monotonic() - started

    mark("submitted")
    in_intake, in_coordination = f"{intake}/cases/{case}", f"{coordination}/cases/{case}"
    in_plans, in_followup = f"{plans}/cases/{case}", f"{followup}/cases/{case}"
    await step(
        http,
        f"{in_intake}/clarify",
        MANAGER,
        CLARIFICATION,
        state_url=in_intake,
        done=lambda c: c["stage"] in ("clarified", "accepted"),
        patience=patience,
    )
    mark("clarified")
    await step(
        http,
        f"{in_intake}/accept",
        MANAGER,
        state_url=in_intake,
        done=lambda c: c["stage"] == "accepted",
        patience=patience,
    )
    mark("accepted")
    await until(http, in_coordination, lambda c: bool(c.get("coordinator_ids")), patience)
    mark("assigned")
    await step(
        http,
        f"{in_coordination}/contact",
        COORDINATOR,
        state_url=in_coordination,
        done=lambda c: c.get("contacted_at") is not None,
        patience=patience,
    )
    mark("contacted")
    await step(
        http,
        f"{in_coordination}/conference",
        COORDINATOR,
        conference_body(model),
        state_url=in_coordination,
        done=lambda c: c["stage"] == "conference_held",
        patience=patience,
    )
    mark("conference_held")
    await step(
        http,
        f"{in_plans}/plan",
        COORDINATOR,
        PLAN,
        state_url=f"{in_plans}/plan",
        done=lambda p: bool(p.get("versions")),
        patience=patience,
    )
    mark("plan_written")
    await step(
        http,
        f"{in_plans}/plan/distribute",
        COORDINATOR,
        DISTRIBUTION,
        state_url=f"{in_plans}/plan",
        done=lambda p: p["stage"] == "plan_distributed",
        patience=patience,
    )
    mark("distributed")
    await until(http, in_followup, lambda c: bool(c.get("timers")), patience)
    mark("follow_up_scheduled")
    return run


async def _get(http: httpx.AsyncClient, url: str) -> dict[str, Any] | None:
    try:
        response = await http.get(url, timeout=10)
    except RETRY_ERRORS:
        return None
    if response.status_code != 200:
        return None
    result: dict[str, Any] = response.json()
    return result


async def until(http: httpx.AsyncClient, url: str, done: Check, patience: float) -> dict[str, Any]:
    """Wait until the resource at ``url`` satisfies ``done``."""
    deadline = time.monotonic() + patience
    while True:
        state = await _get(http, url)
        if state is not None and done(state):
            return state
        if time.monotonic() > deadline:
            raise WorkflowError(f"gave up waiting for {url} after {patience:.0f} s")
        await asyncio.sleep(0.1)
