"""What the pages show, made from what the services answer: the case board, what changed
between two versions of a plan, the timeline. No I/O here: ``pages.py`` asks the services
(``client.py``) and hands the answers in."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.console.i18n import N_
from shared.case_list import STAGE_RANK, CaseRow, merge, select

#: The conference's parts, in order.
PARTS = ("information", "plan_making", "presentation")
#: Roles that never sit in private family time (coordination's rule, said on the form).
PROFESSIONAL_ROLES = ("professional", "expert")
#: The models whose part two the coordinator chairs.
COORDINATOR_CHAIRED = ("group", "restorative", "learning_circle")


@dataclass
class Board:
    rows: list[CaseRow]
    #: Cases per stage, over every case the person may see (before the filters).
    counts: list[tuple[str, int]]
    total: int
    stages: list[str]
    models: list[str]
    regions: list[str]
    coordinators: list[str]


def board(lists: Mapping[str, Sequence[Mapping[str, Any]]], filters: Mapping[str, str]) -> Board:
    merged = merge(lists)
    overdue = {"yes": True, "no": False}.get(filters.get("overdue", ""))
    chosen = select(
        merged,
        stage=filters.get("stage") or None,
        model=filters.get("model") or None,
        region=filters.get("region") or None,
        coordinator=filters.get("coordinator") or None,
        overdue=overdue,
    )
    counted = Counter(case.stage for case in merged)
    order = {stage: rank for rank, stage in enumerate(STAGE_RANK)}
    counts = sorted(counted.items(), key=lambda item: order.get(item[0], len(order)))
    return Board(
        rows=chosen,
        counts=counts,
        total=len(merged),
        stages=list(STAGE_RANK),
        models=sorted({c.model for c in merged if c.model}),
        regions=sorted({c.region for c in merged if c.region}),
        coordinators=sorted({cid for c in merged for cid in c.coordinator_ids}),
    )


@dataclass
class Change:
    """One thing a new version of the plan changed: a message (translated on the page) and
    its values."""

    message: str
    values: dict[str, Any] = field(default_factory=dict)


PLAN_FIELDS = {
    "question": N_("the conference question changed"),
    "if_something_does_not_work": N_("what happens if something does not work changed"),
    "watched_by": N_("who watches the agreements changed"),
    "next_meeting_on": N_("the next meeting changed"),
    "professional_support": N_("the chosen support changed"),
}


def plan_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[Change]:
    """What a version changed against the one before it (the first: what it holds)."""
    now = {a["id"]: a for a in after.get("agreements", [])}
    if before is None:
        return [Change(N_("first version, %(count)s agreements"), {"count": len(now)})]
    then = {a["id"]: a for a in before.get("agreements", [])}
    changes = [
        Change(N_("agreement %(id)s added: %(what)s"), {"id": i, "what": a["what"]})
        for i, a in now.items()
        if i not in then
    ]
    changes += [Change(N_("agreement %(id)s removed"), {"id": i}) for i in then if i not in now]
    for i, agreement in now.items():
        earlier = then.get(i)
        if earlier is None:
            continue
        changed = [
            k for k in ("who", "what", "where", "when") if earlier.get(k) != agreement.get(k)
        ]
        if changed:
            changes.append(
                Change(
                    N_("agreement %(id)s changed: %(fields)s"),
                    {"id": i, "fields": ", ".join(changed)},
                )
            )
    changes += [
        Change(message) for key, message in PLAN_FIELDS.items() if before.get(key) != after.get(key)
    ]
    return changes or [Change(N_("nothing changed"))]


def versions_with_changes(plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every version, newest first, each with what it changed."""
    versions = list(plan.get("versions", []))
    shown = []
    for index, version in enumerate(versions):
        before = versions[index - 1]["content"] if index else None
        shown.append(version | {"changes": plan_changes(before, version["content"])})
    return list(reversed(shown))


def timeline(entries_by_service: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Any]:
    """Every stored event of the case across the services, in time order."""
    merged = [
        dict(e) | {"service": s} for s, entries in entries_by_service.items() for e in entries
    ]
    return sorted(merged, key=lambda e: (str(e.get("time", "")), e["service"], e.get("version", 0)))


def access_entries(entries_by_service: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Any]:
    merged = [
        dict(e) | {"service": s} for s, entries in entries_by_service.items() for e in entries
    ]
    return sorted(merged, key=lambda e: (str(e.get("at", "")), e["service"]))


def can_come(participants: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Participants who may be recorded present: confirmed ones."""
    return [p for p in participants if p.get("invitation") == "confirmed"]


#: Timer kinds that are no contact of the schedule: the reminder, and the family's own meeting
#: (recorded as a meeting, not as a contact's outcome).
NOT_CONTACTS = ("next_meeting_reminder", "next_meeting")


def open_contacts(follow_up: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Contacts that came due and wait for their outcome."""
    return [
        t
        for t in follow_up.get("timers", [])
        if t.get("fired_at")
        and not t.get("outcome_recorded")
        and not t.get("cancelled_at")
        and t.get("kind") not in NOT_CONTACTS
    ]


def open_meetings(follow_up: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The family's own next meetings not recorded yet (due or not: a meeting is recorded when
    it was held, whenever that is)."""
    return [
        t
        for t in follow_up.get("timers", [])
        if t.get("kind") == "next_meeting"
        and not t.get("outcome_recorded")
        and not t.get("cancelled_at")
    ]


def unrated_contacts(follow_up: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Contacts (the family's meetings among them) that came due and have no marks yet."""
    rated = follow_up.get("ratings") or {}
    return [
        t
        for t in follow_up.get("timers", [])
        if t.get("fired_at")
        and not t.get("cancelled_at")
        and t.get("kind") != "next_meeting_reminder"
        and t.get("timer_id") not in rated
    ]


def readable(value: Any) -> Any:
    """A service's answer for the "what each service knows" page: nested values kept, the
    empty ones left out."""
    if isinstance(value, Mapping):
        return {k: readable(v) for k, v in value.items() if v not in (None, [], {}, "")}
    if isinstance(value, list):
        return [readable(v) for v in value]
    return value
