"""The console's forms turned into the bodies the services take. Blank rows of a repeated group
(a question, a requirement, an agreement) are left out; the services check the rest and say,
by field, what is wrong."""

from __future__ import annotations

from typing import Any

from services.console.web import Form

#: Rows shown of each repeated group beyond those filled in; "one more row" adds to this.
BLANK_ROWS = 1
MAX_ROWS = 50


def number(text: str, default: int) -> int | str:
    """A number field: the number, its default when empty, or what was typed (the service then
    says, by field, that it is not a number)."""
    if not text:
        return default
    return int(text) if text.isdigit() else text


def rows(form: Form | None, prefix: str, filled: int) -> int:
    """How many rows of a group to show: those filled, a blank one, and one more per click."""
    wanted = filled + BLANK_ROWS
    if form is not None:
        present = _indices(form, prefix)
        wanted = max(wanted, present[-1] + 1 if present else 0)
        if form.one("more") == prefix:
            wanted += 1
    return min(wanted, MAX_ROWS)


def _indices(form: Form, prefix: str) -> list[int]:
    found = set()
    for key in form.fields:
        head = key.split("_", 1)[0]
        if head.startswith(prefix) and head[len(prefix) :].isdigit():
            found.add(int(head[len(prefix) :]))
    return sorted(found)


def request_body(form: Form) -> dict[str, Any]:
    body: dict[str, Any] = {
        "requester": {
            "name": form.one("requester_name"),
            "relation": form.one("requester_relation"),
            "contact": form.one("requester_contact") or None,
        },
        "central_persons": form.lines("central_persons"),
        "model": form.one("model"),
        "region": form.one("region"),
        "languages": [x.strip() for x in form.one("languages", "nl").split(",") if x.strip()]
        or ["nl"],
        "description": form.one("description"),
        "informational_talk": form.checked("informational_talk"),
    }
    if form.one("central_group"):
        body["central_group"] = form.one("central_group")
    return body


def clarification_body(form: Form) -> dict[str, Any]:
    requirements = []
    for i in _indices(form, "m"):
        text = form.one(f"m{i}_requirement")
        if not text:
            continue
        requirements.append(
            {
                "requirement": text,
                "set_by": {
                    "name": form.one(f"m{i}_name"),
                    "organisation": form.one(f"m{i}_organisation"),
                    "role": form.one(f"m{i}_role"),
                    "subject": form.one(f"m{i}_subject") or None,
                },
            }
        )
    questions = [form.one(f"q{i}_text") for i in _indices(form, "q")]
    return {
        "conference_questions": [q for q in questions if q],
        "funding": {
            "payer": form.one("payer"),
            "organisation": form.one("funding_organisation") or None,
            "status": form.one("funding_status", "requested"),
        },
        "minimum_requirements": requirements,
        "coordinators_needed": number(form.one("coordinators_needed"), 1),
        "involved_organisations": form.lines("involved_organisations"),
    }


def coordinator_body(form: Form) -> dict[str, Any]:
    def listed(name: str) -> list[str]:
        return [x.strip() for x in form.one(name).split(",") if x.strip()]

    return {
        "coordinator_id": form.one("coordinator_id"),
        "regions": listed("regions"),
        "languages": listed("languages"),
        "capacity": number(form.one("capacity"), 3),
        "organisations": listed("organisations"),
    }


def participant_body(form: Form) -> dict[str, Any]:
    return {
        "name": form.one("name"),
        "role": form.one("role"),
        "contact": form.one("contact") or None,
        "organisation": form.one("organisation") or None,
        "language": form.one("language") or None,
    }


def arrangements_body(form: Form) -> dict[str, Any]:
    return {
        "date": form.one("date") or None,
        "venue": form.one("venue") or None,
        "languages": [x.strip() for x in form.one("languages").split(",") if x.strip()],
        "interpreter": form.one("interpreter") or None,
        "food": form.one("food") or None,
        "rituals": form.one("rituals") or None,
    }


def conference_body(form: Form) -> dict[str, Any]:
    parts = {}
    for part in ("information", "plan_making", "presentation"):
        if not form.checked(f"took_{part}"):
            continue
        parts[part] = {
            "present": form.all(f"present_{part}"),
            "coordinator": form.checked(f"coordinator_{part}"),
            "interpreter": form.checked(f"interpreter_{part}"),
        }
    return {"held_on": form.one("held_on"), "parts": parts}


def ending_body(form: Form) -> dict[str, Any]:
    return {
        "ending": form.one("ending"),
        "reason": form.one("reason") or None,
        "note": form.one("note"),
    }


def recipients_body(form: Form, participant_ids: list[str]) -> dict[str, Any]:
    recipients = []
    for pid in participant_ids:
        channel = form.one(f"r_{pid}_channel", "by_hand")
        delivery: dict[str, Any] = {"channel": channel}
        if channel == "email":
            delivery["email"] = form.one(f"r_{pid}_email")
        elif channel == "post":
            delivery["address"] = form.one(f"r_{pid}_address")
        recipients.append(
            {"participant_id": pid, "name": form.one(f"r_{pid}_name") or None, "delivery": delivery}
        )
    return {"recipients": recipients}


def plan_body(form: Form) -> dict[str, Any]:
    agreements = []
    for i in _indices(form, "a"):
        what = form.one(f"a{i}_what")
        if not what:
            continue
        agreement: dict[str, Any] = {
            "who": form.all(f"a{i}_who"),
            "what": what,
            "where": form.one(f"a{i}_where") or None,
            "answers": form.all(f"a{i}_answers"),
        }
        if form.one(f"a{i}_id"):
            agreement["id"] = form.one(f"a{i}_id")
        kind = form.one(f"a{i}_when")
        if kind == "on":
            agreement["when"] = {"on": form.one(f"a{i}_on") or None}
        elif kind == "recurring":
            agreement["when"] = {"recurring": form.one(f"a{i}_recurring") or None}
        agreements.append(agreement)
    support = [
        {"organisation": form.one(f"s{i}_organisation"), "what": form.one(f"s{i}_what")}
        for i in _indices(form, "s")
        if form.one(f"s{i}_organisation") or form.one(f"s{i}_what")
    ]
    return {
        "agreements": agreements,
        "if_something_does_not_work": form.one("if_something_does_not_work"),
        "watched_by": form.one("watched_by"),
        "next_meeting_on": form.one("next_meeting_on") or None,
        "professional_support": support,
    }


#: Respondents' rows on the marks form.
RATING_ROWS = 8


def meeting_body(form: Form, agreement_ids: list[str]) -> dict[str, Any]:
    """The family's next meeting as typed: the service says what does not fit (outcomes for a
    meeting not held, a day in the future)."""
    return {
        "timer_id": form.one("meeting_timer_id") or None,
        "held": form.one("held") == "yes",
        "held_on": form.one("held_on") or None,
        "agreements": {a: form.one(f"m_{a}") for a in agreement_ids if form.one(f"m_{a}")},
        "revised_plan_wanted": form.checked("revised_plan_wanted"),
        "next_meeting_on": form.one("again_on") or None,
        "notes": form.one("meeting_notes"),
    }


def ratings_body(form: Form) -> dict[str, Any]:
    """One entry per respondent's row with a mark (rows left blank are nobody)."""

    def mark(text: str) -> int | str | None:
        return int(text) if text.isdigit() else (text or None)

    ratings = []
    for i in range(RATING_ROWS):
        meeting, plan = form.one(f"r{i}_meeting"), form.one(f"r{i}_plan")
        if meeting or plan:
            ratings.append(
                {"by": form.one(f"r{i}_by"), "meeting": mark(meeting), "plan": mark(plan)}
            )
    return {"timer_id": form.one("rating_timer_id"), "ratings": ratings}


def outcome_body(form: Form, agreement_ids: list[str]) -> dict[str, Any]:
    return {
        "timer_id": form.one("timer_id"),
        "reached": form.checked("reached"),
        "agreements": {a: form.one(f"o_{a}") for a in agreement_ids if form.one(f"o_{a}")},
        "notes": form.one("notes"),
    }
