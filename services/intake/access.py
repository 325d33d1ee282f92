"""Who may do what with a request, in one table: every HTTP route of intake names one of these.

Anyone signed in may submit a request (as anyone may ask for a conference), and the one who
submitted it may withdraw it again. The regional manager of the case's region clarifies,
accepts and withdraws it and reads it; a regional
manager of the region or an operator erases it, with a reason. Intake does not know the case's
coordinators, so no coordinator reads a request here.
"""

from __future__ import annotations

from shared.access import Rule, Scope, grants
from shared.actor import Role

MANAGER = grants((Role.REGIONAL_MANAGER, Scope.REGION))

RULES: dict[str, Rule] = {
    "submit": Rule("submitting a request", anyone=True),
    "list": Rule("listing requests", MANAGER),
    "read": Rule("reading a request", MANAGER),
    "clarify": Rule("clarifying the request", MANAGER),
    "accept": Rule("accepting the request", MANAGER),
    "talk": Rule("recording the informational talk", MANAGER),
    "withdraw": Rule(
        "withdrawing the request",
        grants((Role.REGIONAL_MANAGER, Scope.REGION), (Role.REQUESTER, Scope.SUBMITTER)),
    ),
    "erase": Rule(
        "erasing the case",
        grants((Role.REGIONAL_MANAGER, Scope.REGION), (Role.OPERATOR, Scope.ANY)),
    ),
    "history": Rule("reading the request's history", MANAGER),
}
