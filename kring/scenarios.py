"""Four sample cases, one per model, after the Eigen Kracht Centrale's leaflets on the four
models: what the workflow, ``kring demo``, the end-to-end tests, the fault suite and the
benchmark walk through.

The people are fictional. A ``Person`` is known to the story by a ``key``; the services give each
one an opaque participant id, and the plan's agreements are written with those ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from shared.events import ConferenceModel

INFORMATION, PLAN_MAKING, PRESENTATION = "information", "plan_making", "presentation"
ALL_PARTS = (INFORMATION, PLAN_MAKING, PRESENTATION)
#: Professionals in a family conference: parts one and three, never private family time.
OUTSIDE_FAMILY_TIME = (INFORMATION, PRESENTATION)


@dataclass(frozen=True)
class Person:
    key: str
    name: str
    role: str
    organisation: str | None = None
    #: Their copy of the plan goes by e-mail to this address; without one it is handed over.
    email: str | None = None
    #: The conference parts they were present in.
    parts: tuple[str, ...] = ALL_PARTS


@dataclass(frozen=True)
class Agreement:
    who: tuple[str, ...]
    what: str
    where: str | None = None
    on_day: int | None = None  # days after the conference
    recurring: str | None = None
    #: The conference questions it answers, by number (1: the first question).
    answers: tuple[int, ...] = (1,)


@dataclass(frozen=True)
class Scenario:
    model: ConferenceModel
    story: str
    requester: dict[str, str]
    description: str
    question: str
    funding: dict[str, str]
    #: The second conference question (the leaflets on conferences: one may have several).
    second_question: str
    people: tuple[Person, ...]
    agreements: tuple[Agreement, ...]
    if_something_does_not_work: str
    watched_by: str
    #: The parts the coordinator was present in (chairing part two outside the family model).
    coordinator_parts: tuple[str, ...]
    central_persons: tuple[str, ...] = ()
    central_group: str | None = None
    minimum_requirements: tuple[dict[str, Any], ...] = ()
    coordinators_needed: int = 1
    involved_organisations: tuple[str, ...] = ()
    information: tuple[tuple[str, str], ...] = ()  # (topic, who brings it)
    arrangements: dict[str, Any] = field(default_factory=dict)
    support: tuple[dict[str, str], ...] = ()
    #: The partner organisations (ids in the partner registry) the family consents to share
    #: the plan with, where they are partners (``workflow.Session.partners``).
    shared_with_organisations: tuple[str, ...] = ()
    next_meeting_after_days: int = 90
    #: An informational talk is asked for first; these were its outcomes, in order.
    talks: tuple[str, ...] = ("go_ahead",)
    #: At the family's own next meeting they ask for a revised plan.
    revision_at_next_meeting: bool = False


def person(scenario: Scenario, key: str) -> Person:
    return next(p for p in scenario.people if p.key == key)


# -- the bodies the public APIs take ---------------------------------------------------------
def request_body(scenario: Scenario, region: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "requester": scenario.requester,
        "central_persons": list(scenario.central_persons),
        "model": scenario.model.value,
        "region": region,
        "languages": ["nl"],
        "description": scenario.description,
        "informational_talk": bool(scenario.talks),
    }
    if scenario.central_group:
        body["central_group"] = scenario.central_group
    return body


def clarification_body(scenario: Scenario, signs_in_as: str | None = None) -> dict[str, Any]:
    """The regional manager's clarification; ``signs_in_as``: who the professional who set the
    minimum requirement signs in as (the plan's sign-off is theirs)."""
    requirements = [
        m | {"set_by": m["set_by"] | {"subject": signs_in_as}} if signs_in_as else m
        for m in scenario.minimum_requirements
    ]
    return {
        "conference_questions": [scenario.question, scenario.second_question],
        "funding": scenario.funding,
        "minimum_requirements": requirements,
        "coordinators_needed": scenario.coordinators_needed,
        "involved_organisations": list(scenario.involved_organisations),
    }


def participant_body(p: Person) -> dict[str, Any]:
    return {
        "name": p.name,
        "role": p.role,
        "contact": p.email,
        "organisation": p.organisation,
        "language": "nl",
    }


def arrangements_body(scenario: Scenario, held_on: date) -> dict[str, Any]:
    return {"date": held_on.isoformat(), "languages": ["nl"], **scenario.arrangements}


def conference_body(scenario: Scenario, ids: dict[str, str], held_on: date) -> dict[str, Any]:
    """Who was present in each part, by participant id; the coordinator per the model."""
    return {
        "held_on": held_on.isoformat(),
        "parts": {
            part: {
                "present": [ids[p.key] for p in scenario.people if part in p.parts],
                "coordinator": part in scenario.coordinator_parts,
            }
            for part in ALL_PARTS
        },
    }


def recipients_body(scenario: Scenario, ids: dict[str, str]) -> dict[str, Any]:
    """The names printed on the copies and how each copy travels: plans keeps them, apart
    from coordination's store."""
    return {
        "recipients": [
            {
                "participant_id": ids[p.key],
                "name": p.name,
                "delivery": {"channel": "email", "email": p.email}
                if p.email
                else {"channel": "by_hand"},
            }
            for p in scenario.people
        ]
    }


def plan_body(scenario: Scenario, ids: dict[str, str], held_on: date) -> dict[str, Any]:
    def when(a: Agreement) -> dict[str, str] | None:
        if a.on_day is not None:
            return {"on": (held_on + timedelta(days=a.on_day)).isoformat()}
        return {"recurring": a.recurring} if a.recurring else None

    return {
        "agreements": [
            {
                "who": [ids[k] for k in a.who],
                "what": a.what,
                "where": a.where,
                "when": when(a),
                "answers": [f"q{n}" for n in a.answers],
            }
            for a in scenario.agreements
        ],
        "if_something_does_not_work": scenario.if_something_does_not_work,
        "watched_by": ids[scenario.watched_by],
        "next_meeting_on": (held_on + timedelta(days=scenario.next_meeting_after_days)).isoformat(),
        "professional_support": list(scenario.support),
    }


# -- the four stories ------------------------------------------------------------------------
FAMILY = Scenario(
    model=ConferenceModel.FAMILY,
    story="A grandmother asks for a family conference: where can Johan (8) grow up safely?",
    requester={"name": "Ria Jansen", "relation": "family"},
    central_persons=("Johan",),
    description="Johan's parents are separated; a supervision order is in place. His"
    " grandmother asks for a conference with the whole family.",
    question="Where can Johan (8) grow up safely, and what does that need?",
    second_question="How do Johan and his brother Wim stay close?",
    talks=("think_it_over", "go_ahead"),
    revision_at_next_meeting=True,
    funding={"payer": "municipality", "organisation": "Gemeente Utrecht", "status": "approved"},
    minimum_requirements=(
        {
            "requirement": "Johan is never at home with a parent who is under the influence.",
            "set_by": {
                "name": "J. de Vries",
                "organisation": "Jeugdzorg Utrecht",
                "role": "family guardian",
            },
        },
    ),
    involved_organisations=("Jeugdzorg Utrecht",),
    people=(
        Person("johan", "Johan", "central_person"),
        Person("father", "Kees", "family", email="kees@example.org"),
        Person("mother", "Mirjam", "family"),
        Person("wim", "Wim", "family"),
        Person("edith", "Edith", "family", email="edith@example.org"),
        Person("herman", "Herman", "family", email="herman@example.org"),
        Person("grandmother", "Ria", "family"),
        Person(
            "guardian",
            "J. de Vries",
            "professional",
            organisation="Jeugdzorg Utrecht",
            email="j.devries@example.org",
            parts=OUTSIDE_FAMILY_TIME,
        ),
        Person(
            "support", "A. Bos", "professional", organisation="Gezinshulp", parts=(INFORMATION,)
        ),
    ),
    coordinator_parts=OUTSIDE_FAMILY_TIME,
    information=(("What the supervision order asks of the parents", "guardian"),),
    arrangements={"venue": "At the grandparents'", "food": "Soup and sandwiches"},
    agreements=(
        Agreement(("johan", "father"), "Johan grows up with his father."),
        Agreement(("herman",), "Pays for Johan's after-school care."),
        Agreement(
            ("father", "mother"),
            "Every other weekend Johan stays with his mother; father brings him on Saturday at"
            " 10:00, mother brings him back on Sunday at 18:30.",
            recurring="every other weekend",
        ),
        Agreement(
            ("grandmother", "johan"),
            "Johan spends Wednesday afternoons with his grandparents.",
            recurring="every Wednesday afternoon",
        ),
        Agreement(
            ("wim", "johan"),
            "Go swimming together.",
            where="the pool",
            recurring="every Friday afternoon",
            answers=(2,),
        ),
        Agreement(("herman", "father"), "Map the finances together.", on_day=14),
        Agreement(("edith",), "If there are problems at father's, Edith contacts mother."),
    ),
    if_something_does_not_work="Edith calls everyone together within a week.",
    watched_by="herman",
    support=({"organisation": "Gezinshulp", "what": "The family support worker coaches father."},),
    shared_with_organisations=("jeugdzorg-utrecht",),
)

GROUP = Scenario(
    model=ConferenceModel.GROUP,
    story="Residents ask for an Alle Hens conference: litter and an unsafe square in their street.",
    requester={"name": "Fatima El Amrani", "relation": "neighbour"},
    central_group="Residents of the Vechtstraat",
    description="Residents are annoyed by litter on the square and feel unsafe in the evening;"
    " young people feel chased away.",
    question="How can we live together safely in this street?",
    second_question="How can the young people have a place of their own in the neighbourhood?",
    funding={"payer": "municipality", "organisation": "Gemeente Utrecht", "status": "approved"},
    coordinators_needed=2,
    involved_organisations=("Gemeente Utrecht",),
    people=(
        Person("fatima", "Fatima", "central_person", email="fatima@example.org"),
        Person("joop", "Joop", "central_person"),
        Person("lisa", "Lisa", "network"),
        Person("youngster", "Mo", "network"),
        Person("youth_worker", "R. Dekker", "professional", organisation="Gemeente Utrecht"),
        Person("police", "S. Visser", "professional", organisation="Politie Midden-Nederland"),
    ),
    coordinator_parts=("information", "plan_making", "presentation"),
    information=(("What the police see in the evenings", "police"),),
    arrangements={"venue": "The community centre", "food": "Everyone brings something"},
    agreements=(
        Agreement(
            ("fatima", "joop", "youngster"),
            "Clear the square together.",
            where="the square",
            recurring="every first Saturday of the month",
        ),
        Agreement(
            ("youth_worker", "youngster"),
            "The community centre is open for young people.",
            recurring="every Friday evening",
            answers=(2,),
        ),
        Agreement(("lisa",), "Starts a street app group for everyone who lives here.", on_day=7),
    ),
    if_something_does_not_work="Joop invites everyone for coffee at the community centre.",
    watched_by="lisa",
    shared_with_organisations=("gemeente-utrecht",),
)

RESTORATIVE = Scenario(
    model=ConferenceModel.RESTORATIVE,
    story="After a break-in at a shop, an Echt Recht conference: offender, victim and both"
    " networks repair the harm.",
    requester={"name": "S. Visser", "relation": "police"},
    central_persons=("Daan", "Mrs Bakker"),
    description="Daan (17) broke into the shop of Mrs Bakker. Both are willing to meet.",
    question="What is needed to repair the harm?",
    second_question="How can Mrs Bakker feel safe in her shop again?",
    funding={"payer": "institution", "organisation": "Halt", "status": "approved"},
    involved_organisations=("Politie Midden-Nederland",),
    people=(
        Person("victim", "Mrs Bakker", "victim", email="bakker@example.org"),
        Person("partner", "Mr Bakker", "network"),
        Person("offender", "Daan", "offender"),
        Person("mother", "Els", "family", email="els@example.org"),
        Person("coach", "Peter", "network"),
        Person("police", "S. Visser", "professional", organisation="Politie Midden-Nederland"),
    ),
    coordinator_parts=("information", "plan_making", "presentation"),
    information=(("What happened that night, as the police recorded it", "police"),),
    arrangements={"venue": "The football club's canteen"},
    agreements=(
        Agreement(("offender", "coach"), "Repair the shop's door together.", on_day=10),
        Agreement(
            ("offender",),
            "Works in the shop on Saturdays until the damage is paid.",
            where="the shop",
            recurring="every Saturday",
        ),
        Agreement(
            ("mother",),
            "Calls Mrs Bakker once a month to hear how it goes.",
            recurring="monthly",
            answers=(2,),
        ),
    ),
    if_something_does_not_work="Peter calls Mr Bakker and Els together.",
    watched_by="coach",
)

LEARNING_CIRCLE = Scenario(
    model=ConferenceModel.LEARNING_CIRCLE,
    story="A teacher asks for a Leercirkel: how can Sanne (14) enjoy going to school again?",
    requester={"name": "M. de Boer", "relation": "teacher"},
    central_persons=("Sanne",),
    description="Sanne (14) often stays at home and is falling behind.",
    question="How can Sanne go to school again with pleasure?",
    second_question="What helps Sanne catch up with her schoolwork?",
    funding={"payer": "school", "organisation": "Het Baken", "status": "requested"},
    people=(
        Person("pupil", "Sanne", "pupil", email="sanne@example.org"),
        Person("teacher", "M. de Boer", "teacher", organisation="Het Baken"),
        Person("mother", "Ingrid", "family", email="ingrid@example.org"),
        Person("friend", "Noor", "network"),
        Person("counsellor", "T. Smit", "professional", organisation="Het Baken"),
    ),
    coordinator_parts=("information", "plan_making", "presentation"),
    information=(("How Sanne is doing at school, subject by subject", "teacher"),),
    arrangements={"venue": "The school library", "food": "Cake"},
    agreements=(
        Agreement(("friend", "pupil"), "Cycle to school together.", recurring="every school day"),
        Agreement(
            ("teacher", "pupil"),
            "A weekly talk about the week's work.",
            recurring="every Monday",
            answers=(1, 2),
        ),
        Agreement(
            ("mother",), "Helps plan homework at home.", recurring="every evening", answers=(2,)
        ),
    ),
    if_something_does_not_work="Sanne tells her mentor; the mentor calls her mother.",
    watched_by="mother",
)

SCENARIOS: dict[ConferenceModel, Scenario] = {
    s.model: s for s in (FAMILY, GROUP, RESTORATIVE, LEARNING_CIRCLE)
}
