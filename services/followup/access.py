"""Who may do what in followup, in one table: every HTTP route names one of these.

Follow-up data carries no names, so a researcher reads every follow-up and records the research
contacts. The coordinator assigned to the case records their own call (four weeks after the
plan), and reads the case's follow-up; the regional manager of the case's region reads it and
records any contact (for the coordinator: recorded as such). The marks the people asked at a
contact gave the meeting and the plan are recorded by whoever may record that contact's outcome.
A follow-up conference is asked for by the coordinator or the regional manager.
"""

from __future__ import annotations

from services.followup.domain import COORDINATOR_CALL, NEXT_MEETING
from shared.access import Rule, Scope, grants
from shared.actor import Role

_CASE = grants((Role.COORDINATOR, Scope.ASSIGNED), (Role.REGIONAL_MANAGER, Scope.REGION))

RULES: dict[str, Rule] = {
    "list": Rule("listing follow-ups", (*_CASE, (Role.RESEARCHER, Scope.ANY))),
    "read": Rule("reading the follow-up", (*_CASE, (Role.RESEARCHER, Scope.ANY))),
    "history": Rule("reading the follow-up's history", _CASE),
    # Per contact below; this one is what the route says, for the table and a first check.
    "outcome": Rule(
        "recording a contact's outcome",
        grants(
            (Role.COORDINATOR, Scope.ASSIGNED),
            (Role.RESEARCHER, Scope.ANY),
            (Role.REGIONAL_MANAGER, Scope.ON_BEHALF),
        ),
    ),
    # The family's own next meeting: theirs to report, or the coordinator's or the office's.
    "meeting": Rule(
        "recording the family's next meeting",
        grants(
            (Role.PARTICIPANT, Scope.SELF),
            (Role.COORDINATOR, Scope.ASSIGNED),
            (Role.REGIONAL_MANAGER, Scope.REGION),
        ),
    ),
    "ratings": Rule(
        "recording the ratings given at a contact",
        grants(
            (Role.COORDINATOR, Scope.ASSIGNED),
            (Role.RESEARCHER, Scope.ANY),
            (Role.REGIONAL_MANAGER, Scope.ON_BEHALF),
        ),
    ),
    "follow_up_conference": Rule(
        "asking for a follow-up conference",
        grants((Role.COORDINATOR, Scope.ASSIGNED), (Role.REGIONAL_MANAGER, Scope.ON_BEHALF)),
    ),
}

#: The coordinator's call is the coordinator's; every other contact is a researcher's; the
#: regional manager may record any (e.g. a call the office made).
OUTCOME_BY_KIND: dict[str, Rule] = {
    COORDINATOR_CALL: Rule(
        "recording the outcome of the coordinator's call",
        grants((Role.COORDINATOR, Scope.ASSIGNED), (Role.REGIONAL_MANAGER, Scope.ON_BEHALF)),
    ),
    # Recorded as a meeting (``/next-meeting``): whoever may is told where.
    NEXT_MEETING: RULES["meeting"],
}
OTHER_OUTCOMES = Rule(
    "recording the outcome of a research contact",
    grants((Role.RESEARCHER, Scope.ANY), (Role.REGIONAL_MANAGER, Scope.REGION)),
)

#: The ratings given at a contact: the same people as its outcome.
RATINGS_BY_KIND: dict[str, Rule] = {
    COORDINATOR_CALL: Rule(
        "recording the ratings given at the coordinator's call",
        OUTCOME_BY_KIND[COORDINATOR_CALL].grants,
    ),
}
OTHER_RATINGS = Rule("recording the ratings given at a research contact", OTHER_OUTCOMES.grants)
