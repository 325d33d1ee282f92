"""One case from request to follow-up, per model, through the public HTTP APIs only, each
step by the person whose step it is, with their own token (``Session.tokens``: the development
issuer's, or any source of tokens the caller brings).

Used by ``kring demo``, the end-to-end tests, the fault suite and the benchmark, so all of them
drive the same steps (the stories are in ``kring.scenarios``). Every step is safe to retry: a
submission carries an ``Idempotency-Key``; a command refused because a service has not yet heard
the event that makes it valid (404/409), or a service that is restarting (503, connection
refused), is tried again until ``patience`` runs out; and where an answer may have been lost, the
step reads the state back before trying again, so nothing is done twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import httpx

from kring import scenarios
from kring.client import Who
from kring.scenarios import Scenario
from shared.events import ConferenceModel

REQUESTER = Who("workflow-requester", ("requester",))
RESEARCHER = Who("workflow-researcher", ("researcher",))


def manager(region: str) -> Who:
    return Who(f"workflow-manager-{region.lower()}", ("regional_manager",), regions=(region,))


def coordinator(coordinator_id: str) -> Who:
    return Who(f"workflow-{coordinator_id}", ("coordinator",), coordinator=coordinator_id)


def professional(region: str) -> Who:
    return Who(f"workflow-professional-{region.lower()}", ("professional",), regions=(region,))


class Tokens(Protocol):
    """Where a session's tokens come from (``kring.client.DevLogin``, or a test's own signer)."""

    async def headers(self, who: Who) -> dict[str, str]: ...


@dataclass
class Session:
    """An HTTP client and the tokens it acts with."""

    http: httpx.AsyncClient
    tokens: Tokens
    #: The partner organisations registered where the session runs: a plan is shared with a
    #: story's organisations only where they are partners (plans refuses any other id).
    partners: frozenset[str] = frozenset()


#: Answers that mean "not yet": the service has not heard the event, or is restarting.
RETRY_STATUSES = frozenset({404, 409, 502, 503, 504})
RETRY_ERRORS = (httpx.TransportError,)
#: A copy of the plan in one of these states has reached its recipient, or is recorded as such.
DELIVERED = frozenset({"sent", "delivered"})


class WorkflowError(RuntimeError):
    """A step was refused for good, or did not succeed within the patience given."""


#: Called after each step with the run, the step's name and what happened, in words (``kring
#: demo`` prints it).
Observer = Callable[["CaseRun", str, str], None]


@dataclass
class CaseRun:
    case_id: str
    model: ConferenceModel
    #: Seconds since the run started at which each step succeeded, by step name.
    steps: dict[str, float] = field(default_factory=dict)
    #: Participant ids the coordination service gave, by the story's keys.
    participant_ids: dict[str, str] = field(default_factory=dict)
    follow_up_case_id: str | None = None
    #: The day the conference was held (the plan's dates count from it).
    held_on: date = field(default_factory=date.today)


async def call(
    session: Session,
    method: str,
    url: str,
    who: Who,
    body: Any = None,
    *,
    key: str | None = None,
    patience: float = 60.0,
    retry_statuses: frozenset[int] = RETRY_STATUSES,
) -> Any:
    """One HTTP call, retried while the answer means "not yet"."""
    deadline = time.monotonic() + patience
    delay = 0.05
    headers = await session.tokens.headers(who)
    if key:
        headers = headers | {"Idempotency-Key": key}
    while True:
        try:
            response = await session.http.request(
                method, url, headers=headers, json=body, timeout=10
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


Check = Callable[[Any], bool]


async def step(
    session: Session,
    method: str,
    url: str,
    who: Who,
    body: Any = None,
    *,
    state_url: str,
    done: Check,
    patience: float,
) -> None:
    """Send a command until it succeeds, or until ``state_url`` shows it already took effect (a
    retry after an answer lost to a crash meets a 409 for a command that did succeed)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            await call(session, method, url, who, body, patience=0)
            return
        except WorkflowError as error:
            failure = error
        state = await read(session, state_url, who)
        if state is not None and done(state):
            return
        if time.monotonic() > deadline:
            raise WorkflowError(f"gave up after {patience:.0f} s: {failure}")
        await asyncio.sleep(0.1)


async def read(session: Session, url: str, who: Who) -> Any:
    """GET ``url`` as ``who``; None while it is not there (yet) or the service does not answer."""
    try:
        response = await session.http.get(
            url, headers=await session.tokens.headers(who), timeout=10
        )
    except RETRY_ERRORS:
        return None
    if response.status_code != 200:
        return None
    return response.json()


async def until(session: Session, url: str, who: Who, done: Check, patience: float) -> Any:
    """Wait until the resource at ``url``, read as ``who``, satisfies ``done``; return it."""
    deadline = time.monotonic() + patience
    delay = 0.05
    while True:
        state = await read(session, url, who)
        if state is not None and done(state):
            return state
        if time.monotonic() > deadline:
            raise WorkflowError(f"gave up waiting for {url} after {patience:.0f} s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.25)


async def join_pool(
    session: Session,
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
            session,
            "POST",
            f"{urls['coordination']}/coordinators",
            manager(region),
            {
                "coordinator_id": coordinator_id,
                "regions": [region],
                "languages": list(languages),
                "capacity": capacity,
            },
        )
    return ids


class _Case:
    """The URLs of one case in each service, and the run being recorded."""

    def __init__(
        self,
        urls: Mapping[str, str],
        run: CaseRun,
        observe: Observer | None,
        started: float,
        region: str,
    ) -> None:
        case = run.case_id
        self.manager = manager(region)
        self.professional = professional(region)
        #: The coordinator assigned (the first, where there are two), once coordination says.
        self.coordinator = coordinator("unassigned")
        self.intake = f"{urls['intake']}/cases/{case}"
        self.coordination = f"{urls['coordination']}/cases/{case}"
        self.plans = f"{urls['plans']}/cases/{case}"
        self.followup = f"{urls['followup']}/cases/{case}"
        self.run = run
        self._observe = observe
        self._started = started

    def mark(self, name: str, said: str) -> None:
        self.run.steps[name] = time.monotonic() - self._started
        if self._observe is not None:
            self._observe(self.run, name, said)


async def run_case(
    session: Session,
    model: ConferenceModel,
    *,
    urls: Mapping[str, str],
    region: str,
    key: str,
    patience: float = 60.0,
    held_on: date | None = None,
    through_follow_up: bool = False,
    observe: Observer | None = None,
) -> CaseRun:
    """Drive one case of ``model`` from request until followup has scheduled its contacts;
    with ``through_follow_up``, on until the first contact's outcome is recorded and a follow-up
    conference has opened a linked case in intake."""
    scenario = scenarios.SCENARIOS[model]
    held_on = held_on or date.today()
    started = time.monotonic()
    # Only a refused submission is final; "not yet" does not apply to a new case.
    created = await call(
        session,
        "POST",
        f"{urls['intake']}/cases",
        REQUESTER,
        scenarios.request_body(scenario, region),
        key=key,
        patience=patience,
        retry_statuses=frozenset({502, 503, 504}),
    )
    run = CaseRun(case_id=created["case_id"], model=model, held_on=held_on)
    case = _Case(urls, run, observe, started, region)
    case.mark("submitted", f"{scenario.story} (case {run.case_id})")
    await _request(session, case, scenario, patience)
    await _prepare(session, case, scenario, held_on, patience)
    await _conference(session, case, scenario, held_on, patience)
    await _plan(session, case, scenario, held_on, patience)
    followup = await until(
        session, case.followup, case.coordinator, lambda f: bool(f.get("timers")), patience
    )
    kinds = ", ".join(f"{t['kind']} due {t['due_at']}" for t in followup["timers"])
    case.mark("follow_up_scheduled", f"Follow-up scheduled: {kinds}")
    if through_follow_up:
        await _follow_up(session, case, key, patience)
    return run


async def accept(session: Session, case_url: str, manager: Who, patience: float = 30) -> None:
    """Accept a clarified request at intake's ``case_url`` as ``manager``, holding the
    informational talk first where the request asks for one (the family goes ahead)."""
    request = await until(session, case_url, manager, lambda c: c["stage"] == "clarified", patience)
    if request.get("informational_talk") and not request.get("informational_talks"):
        talk = {"held_on": date.today().isoformat(), "outcome": "go_ahead"}
        await call(session, "POST", f"{case_url}/informational-talk", manager, talk)
    await call(session, "POST", f"{case_url}/accept", manager)


async def _request(session: Session, case: _Case, scenario: Scenario, patience: float) -> None:
    await step(
        session,
        "POST",
        f"{case.intake}/clarify",
        case.manager,
        scenarios.clarification_body(scenario, signs_in_as=case.professional.name),
        state_url=case.intake,
        done=lambda c: c["stage"] in ("clarified", "accepted"),
        patience=patience,
    )
    minimum = " and a minimum requirement" if scenario.minimum_requirements else ""
    case.mark("clarified", f"The regional manager sets two questions, the funding{minimum}")
    for n, outcome in enumerate(scenario.talks, start=1):
        await step(
            session,
            "POST",
            f"{case.intake}/informational-talk",
            case.manager,
            {"held_on": date.today().isoformat(), "outcome": outcome},
            state_url=case.intake,
            done=_talks(n),
            patience=patience,
        )
    if scenario.talks:
        said = ", then ".join(t.replace("_", " ") for t in scenario.talks)
        case.mark("informational_talk", f"An informational talk first: {said}")
    await step(
        session,
        "POST",
        f"{case.intake}/accept",
        case.manager,
        state_url=case.intake,
        done=lambda c: c["stage"] == "accepted",
        patience=patience,
    )
    case.mark("accepted", "The regional manager accepts the request for a conference")
    needed = scenario.coordinators_needed
    assigned = await until(
        session,
        case.coordination,
        case.manager,
        lambda c: len(c.get("coordinator_ids") or []) >= needed,
        patience,
    )
    # From here on the first coordinator assigned prepares the case, with their own token.
    case.coordinator = coordinator(assigned["coordinator_ids"][0])
    case.mark("assigned", f"Coordination assigns {', '.join(assigned['coordinator_ids'])}")


async def _prepare(
    session: Session, case: _Case, scenario: Scenario, held_on: date, patience: float
) -> None:
    await step(
        session,
        "POST",
        f"{case.coordination}/contact",
        case.coordinator,
        state_url=case.coordination,
        done=lambda c: c.get("contacted_at") is not None,
        patience=patience,
    )
    case.mark("contacted", "The coordinator makes first contact, within the deadline")
    ids = await _invite(session, case, scenario, patience)
    case.run.participant_ids = ids
    case.mark("invited", f"The circle is widened: {len(ids)} people invited")
    participants = f"{case.coordination}/participants"
    for p in scenario.people:
        await step(
            session,
            "POST",
            f"{participants}/{ids[p.key]}/confirm",
            case.coordinator,
            {"share_details": True},
            state_url=participants,
            done=_confirmed(ids[p.key]),
            patience=patience,
        )
    case.mark("confirmed", "Everyone confirms, and agrees to their details being shared")
    for p in scenario.people:
        await step(
            session,
            "POST",
            f"{participants}/{ids[p.key]}/informed",
            case.coordinator,
            state_url=participants,
            done=_informed(ids[p.key]),
            patience=patience,
        )
    case.mark(
        "informed",
        "The coordinator tells everyone the aim, the way of working, responsibilities and"
        " possibilities",
    )
    for topic, key in scenario.information:
        await step(
            session,
            "POST",
            f"{case.coordination}/information",
            case.coordinator,
            {"topic": topic, "brought_by": ids[key]},
            state_url=case.coordination,
            done=_has_information(topic),
            patience=patience,
        )
    await call(
        session,
        "PUT",
        f"{case.coordination}/arrangements",
        case.coordinator,
        scenarios.arrangements_body(scenario, held_on),
        patience=patience,
    )
    case.mark("prepared", "The information needed and the family's practicalities are recorded")
    venue = scenario.arrangements.get("venue", "to be decided")
    await step(
        session,
        "POST",
        f"{case.coordination}/schedule",
        case.coordinator,
        {"on": held_on.isoformat(), "venue": venue},
        state_url=case.coordination,
        done=lambda c: c["stage"] in ("conference_scheduled", "conference_held"),
        patience=patience,
    )
    case.mark("scheduled", f"The conference is scheduled for {held_on.isoformat()}")


async def _invite(
    session: Session, case: _Case, scenario: Scenario, patience: float
) -> dict[str, str]:
    """Add the story's people in order. An answer lost to a crash is recovered by reading the
    list back: the n-th participant listed is the story's n-th person, never added twice."""
    participants = f"{case.coordination}/participants"
    deadline = time.monotonic() + patience
    while True:
        listed = await read(session, participants, case.coordinator)
        if listed is not None and len(listed) >= len(scenario.people):
            return {
                p.key: row["participant_id"]
                for p, row in zip(scenario.people, listed, strict=False)
            }
        if listed is not None:
            try:
                await call(
                    session,
                    "POST",
                    participants,
                    case.coordinator,
                    scenarios.participant_body(scenario.people[len(listed)]),
                    patience=0,
                )
                continue
            except WorkflowError:
                pass
        if time.monotonic() > deadline:
            raise WorkflowError(f"gave up inviting after {patience:.0f} s")
        await asyncio.sleep(0.1)


def _confirmed(participant_id: str) -> Check:
    return lambda listed: any(
        p["participant_id"] == participant_id and p["invitation"] == "confirmed" for p in listed
    )


def _talks(count: int) -> Check:
    return lambda case: len(case.get("informational_talks") or []) >= count


def _informed(participant_id: str) -> Check:
    return lambda listed: any(
        p["participant_id"] == participant_id and p.get("informed_on") for p in listed
    )


def _has_information(topic: str) -> Check:
    return lambda case: any(i.get("topic") == topic for i in case.get("information", []))


def _delivered_to(participant_id: str) -> Check:
    return lambda copies: any(
        d["participant_id"] == participant_id and d["status"] in DELIVERED for d in copies
    )


async def _conference(
    session: Session, case: _Case, scenario: Scenario, held_on: date, patience: float
) -> None:
    await step(
        session,
        "POST",
        f"{case.coordination}/conference",
        case.coordinator,
        scenarios.conference_body(scenario, case.run.participant_ids, held_on),
        state_url=case.coordination,
        done=lambda c: c["stage"] == "conference_held",
        patience=patience,
    )
    second = (
        "private family time"
        if scenario.model is ConferenceModel.FAMILY
        else "the plan made, the coordinator chairing"
    )
    case.mark("conference_held", f"The conference is held: information, {second}, presentation")


async def _plan(
    session: Session, case: _Case, scenario: Scenario, held_on: date, patience: float
) -> None:
    ids, plan = case.run.participant_ids, f"{case.plans}/plan"
    # Plans has the questions and requirements from intake (a claim check) before it prints.
    await until(session, plan, case.coordinator, lambda p: p["clarification_known"], patience)
    # Plans knows the participants once it heard ConferenceHeld; the names stay in plans.
    await step(
        session,
        "POST",
        f"{plan}/recipients",
        case.coordinator,
        scenarios.recipients_body(scenario, ids),
        state_url=plan,
        done=lambda p: bool(p["participants"]) and all(q["name_given"] for q in p["participants"]),
        patience=patience,
    )
    await step(
        session,
        "POST",
        plan,
        case.coordinator,
        scenarios.plan_body(scenario, ids, held_on),
        state_url=plan,
        done=lambda p: bool(p.get("versions")),
        patience=patience,
    )
    case.mark(
        "plan_written",
        f"The coordinator writes up the plan: {len(scenario.agreements)}"
        " agreements answering the two questions, who watches them, when everyone meets again",
    )
    await _accept_and_distribute(session, case, scenario, 1, patience)


async def _accept_and_distribute(
    session: Session, case: _Case, scenario: Scenario, version: int, patience: float
) -> None:
    """The family accepts the version, the professional who set the minimum requirement signs
    it off, the coordinator distributes it and every copy is delivered."""
    ids, plan = case.run.participant_ids, f"{case.plans}/plan"
    first = version == 1

    def mark(name: str, said: str) -> None:
        if first:  # a revision is marked once, when it is distributed
            case.mark(name, said)

    await step(
        session,
        "POST",
        f"{plan}/accept",
        # The coordinator records the family's acceptance (part three of the conference).
        case.coordinator,
        {"version": version},
        state_url=plan,
        done=lambda p: len(p["versions"]) >= version and p["versions"][version - 1]["accepted"],
        patience=patience,
    )
    mark("plan_accepted", "Those present accept the plan: it is theirs")
    if scenario.minimum_requirements:
        await step(
            session,
            "POST",
            f"{plan}/sign-off",
            # The professional who set the minimum requirement, as intake recorded them.
            case.professional,
            {"version": version, "meets": True},
            state_url=plan,
            done=lambda p: p["versions"][version - 1]["sign_off"] is not None,
            patience=patience,
        )
        mark("signed_off", "The professional who set the minimum requirement signs the plan off")
    await step(
        session,
        "POST",
        f"{plan}/distribute",
        case.coordinator,
        {
            "shared_with_organisations": [
                o for o in scenario.shared_with_organisations if o in session.partners
            ],
            "version": version,
        },
        state_url=plan,
        done=lambda p: any(d["version"] == version for d in p.get("distributions", [])),
        patience=patience,
    )
    mark("distributed", f"The plan goes to all {len(ids)} participants")
    await _deliver(session, case, patience, mark=first)


async def _deliver(session: Session, case: _Case, patience: float, *, mark: bool = True) -> None:
    """E-mail copies go out by themselves; the coordinator hands over the rest (and any e-mail
    that could not be sent), and records each handover."""
    deliveries = f"{case.plans}/plan/deliveries"
    settled = await until(
        session,
        deliveries,
        case.coordinator,
        lambda ds: all(d["status"] != "pending" or d["channel"] != "email" for d in ds),
        patience,
    )
    for copy in settled:
        if copy["status"] in DELIVERED:
            continue
        await step(
            session,
            "POST",
            deliveries,
            case.coordinator,
            {
                "version": copy["version"],
                "participant_id": copy["participant_id"],
                "channel": "by_hand",
            },
            state_url=deliveries,
            done=_delivered_to(copy["participant_id"]),
            patience=patience,
        )
    emailed = sum(1 for d in settled if d["status"] == "sent")
    if not mark:
        return
    case.mark(
        "delivered",
        f"Every copy reached its recipient: {emailed} by e-mail, {len(settled) - emailed} by hand",
    )


async def _follow_up(session: Session, case: _Case, key: str, patience: float) -> None:
    contact = await until(
        session,
        case.followup,
        case.coordinator,
        lambda f: _first_contact_due(f) is not None,
        patience,
    )
    timer = _first_contact_due(contact)
    assert timer is not None
    case.mark("follow_up_due", f"The {timer['kind']} contact is due")
    agreements = {aid: "kept" for aid in contact["agreement_ids"]}
    if agreements:
        agreements[contact["agreement_ids"][-1]] = "partly_kept"
    await step(
        session,
        "POST",
        f"{case.followup}/outcomes",
        # The coordinator makes the four-week call; a researcher the later contacts.
        case.coordinator if timer["kind"] == "coordinator_call" else RESEARCHER,
        {
            "timer_id": timer["timer_id"],
            "reached": True,
            "agreements": agreements,
            "notes": "Most agreements hold; the family wants to meet again.",
        },
        state_url=case.followup,
        done=lambda f: any(o["timer_id"] == timer["timer_id"] for o in f.get("outcomes", [])),
        patience=patience,
    )
    case.mark("outcome_recorded", "The outcome is recorded: reached, agreement by agreement")
    # At the same contact the people asked rate the meeting and the plan (1-10), by group.
    await step(
        session,
        "POST",
        f"{case.followup}/ratings",
        # Whoever records the contact's outcome records its ratings.
        case.coordinator if timer["kind"] == "coordinator_call" else RESEARCHER,
        {
            "timer_id": timer["timer_id"],
            "ratings": [
                {"by": "family_network", "meeting": 9, "plan": 8},
                {"by": "family_network", "meeting": 8, "plan": 8},
                {"by": "professional", "meeting": 8, "plan": 7},
            ],
        },
        state_url=case.followup,
        done=lambda f: timer["timer_id"] in f.get("ratings", {}),
        patience=patience,
    )
    case.mark("ratings_recorded", "The family, the network and a professional rate the meeting")
    await _next_meeting(session, case, contact, patience)
    requested = await call(
        session,
        "POST",
        f"{case.followup}/follow-up-conference",
        case.coordinator,
        {"reason": "The family asks to meet again about the finances."},
        key=f"{key}:follow-up-conference",
        patience=patience,
    )
    new_case = str(requested["new_case_id"])
    await until(
        session,
        f"{case.intake.rsplit('/', 1)[0]}/{new_case}",
        case.manager,
        lambda c: c.get("follow_up_of") == case.run.case_id,
        patience,
    )
    case.run.follow_up_case_id = new_case
    case.mark("follow_up_conference", f"A follow-up conference opens case {new_case}, linked")


async def _next_meeting(
    session: Session, case: _Case, follow_up: dict[str, Any], patience: float
) -> None:
    """The family meets again, as the plan said, and the coordinator records it: held, every
    agreement reviewed; where the family asks for it, a revised plan follows (the coordinator
    writes the next version in plans)."""
    scenario = scenarios.SCENARIOS[case.run.model]
    revise = scenario.revision_at_next_meeting
    await step(
        session,
        "POST",
        f"{case.followup}/next-meeting",
        case.coordinator,
        {
            "held": True,
            "held_on": date.today().isoformat(),
            "agreements": {aid: "kept" for aid in follow_up["agreement_ids"]},
            "revised_plan_wanted": revise,
        },
        state_url=case.followup,
        done=lambda f: bool(f.get("meetings")),
        patience=patience,
    )
    case.mark("next_meeting", "The family meets again and reviews every agreement")
    if not revise:
        return
    plan = f"{case.plans}/plan"
    asked = await until(
        session, plan, case.coordinator, lambda p: p["revision_requested_at"] is not None, patience
    )
    body = scenarios.plan_body(scenario, case.run.participant_ids, case.run.held_on)
    body["if_something_does_not_work"] += " (Revised at the family's meeting.)"
    # The same agreements, revised: each keeps its id, so its outcomes follow it.
    kept = [a["id"] for a in asked["versions"][0]["content"]["agreements"]]
    for agreement, agreement_id in zip(body["agreements"], kept, strict=True):
        agreement["id"] = agreement_id
    await step(
        session,
        "POST",
        plan,
        case.coordinator,
        body,
        state_url=plan,
        done=lambda p: len(p.get("versions") or []) >= 2,
        patience=patience,
    )
    await _accept_and_distribute(session, case, scenario, 2, patience)
    await until(
        session, case.followup, case.coordinator, lambda f: f["plan_version"] >= 2, patience
    )
    case.mark(
        "plan_revised",
        "At their meeting the family asks for a revised plan: version 2 is written, accepted,"
        " signed off and goes to everyone",
    )


def _first_contact_due(follow_up: dict[str, Any]) -> dict[str, Any] | None:
    """The first contact timer that fired (a reminder is not a contact)."""
    fired = [
        t
        for t in follow_up.get("timers", [])
        if t.get("fired_at") and t["kind"] != "next_meeting_reminder"
    ]
    return min(fired, key=lambda t: t["due_at"]) if fired else None
