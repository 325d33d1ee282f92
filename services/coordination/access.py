"""Who may do what in coordination, in one table: every HTTP route names one of these.

The regional manager of a case's region assigns by hand and reads the case; the coordinator
assigned to it prepares it (first contact, participants, information, practicalities, the
schedule, the conference, an ending), and a regional manager of the region may act for them,
recorded as acting for the coordinator. A participant answers for themself (their token names
the case and their participant id): after a decline only they can say yes again. The pool is
the regional managers' of the regions a coordinator works in; a coordinator sees their own
entry and may say they are unavailable or declare a relation themself.
"""

from __future__ import annotations

from shared.access import Rule, Scope, grants
from shared.actor import Role

_PREPARES = grants((Role.COORDINATOR, Scope.ASSIGNED), (Role.REGIONAL_MANAGER, Scope.ON_BEHALF))
_READS = grants((Role.COORDINATOR, Scope.ASSIGNED), (Role.REGIONAL_MANAGER, Scope.REGION))
_MANAGES = grants((Role.REGIONAL_MANAGER, Scope.REGION))
_THEMSELF_OR_MANAGER = grants(
    (Role.COORDINATOR, Scope.ASSIGNED), (Role.REGIONAL_MANAGER, Scope.REGION)
)

RULES: dict[str, Rule] = {
    # the pool (a coordinator's facts: the regions they work in, their own id)
    "register": Rule("registering a coordinator", _MANAGES),
    "list_coordinators": Rule("listing the pool", _THEMSELF_OR_MANAGER),
    "availability": Rule("setting a coordinator's availability", _THEMSELF_OR_MANAGER),
    "relation": Rule("declaring a coordinator's relation to a case", _THEMSELF_OR_MANAGER),
    # the cases
    "list": Rule("listing cases", _READS),
    "unassigned": Rule("listing the cases waiting for a coordinator", _MANAGES),
    # Not a route: part of the case view, for whoever the rule allows.
    "passed_over": Rule("seeing why other coordinators were passed over", _MANAGES),
    "read": Rule("reading the case", _READS),
    "participants": Rule("reading the case's participants", _READS),
    "history": Rule("reading the case's history", _READS),
    "assign": Rule("assigning coordinators by hand", _MANAGES),
    "contact": Rule("recording the first contact", _PREPARES),
    "invite": Rule("inviting a participant", _PREPARES),
    "answer": Rule(
        "recording a participant's answer",
        grants(
            (Role.PARTICIPANT, Scope.SELF),
            (Role.COORDINATOR, Scope.ASSIGNED),
            (Role.REGIONAL_MANAGER, Scope.ON_BEHALF),
        ),
    ),
    "inform": Rule("recording that a participant was informed", _PREPARES),
    "information": Rule("noting the information needed", _PREPARES),
    "arrangements": Rule("recording the practicalities", _PREPARES),
    "schedule": Rule("scheduling the conference", _PREPARES),
    "conference": Rule("recording the conference", _PREPARES),
    "end": Rule("ending the case without a conference", _PREPARES),
}
