"""Who may do what with a plan, in one table: every HTTP route of plans names one of these.

The coordinator assigned to the case writes the plan up, names who gets a copy, distributes it
and records the copies handed over; a regional manager of the case's region may do so for them
(recorded as acting for the coordinator). The family's acceptance is recorded by a participant
of the case, or by the coordinator for them. A professional of the case's region signs it off
against the minimum requirement (which professional, the plan's domain says: the one who set
it, or one the regional manager of the region named in their place). Reading the plan and its
copies: the coordinator, the regional manager and professionals of the region, and the case's
own participants. A partner organisation's client fetches its own copy of a case the family
shares with that organisation, and nothing else; the family (a participant, or the coordinator
for them) withdraws that consent.
"""

from __future__ import annotations

from shared.access import Rule, Scope, grants
from shared.actor import Role

_WRITES = grants((Role.COORDINATOR, Scope.ASSIGNED), (Role.REGIONAL_MANAGER, Scope.ON_BEHALF))
_READS = grants(
    (Role.COORDINATOR, Scope.ASSIGNED),
    (Role.REGIONAL_MANAGER, Scope.REGION),
    (Role.PROFESSIONAL, Scope.REGION),
    (Role.PARTICIPANT, Scope.SELF),
)

RULES: dict[str, Rule] = {
    "list": Rule(
        "listing plans",
        grants((Role.COORDINATOR, Scope.ASSIGNED), (Role.REGIONAL_MANAGER, Scope.REGION)),
    ),
    "read": Rule("reading the plan", _READS),
    "document": Rule("reading a copy of the plan", _READS),
    "history": Rule(
        "reading the plan's history",
        grants((Role.COORDINATOR, Scope.ASSIGNED), (Role.REGIONAL_MANAGER, Scope.REGION)),
    ),
    "recipients": Rule("naming who gets a copy", _WRITES),
    "write": Rule("writing up the plan", _WRITES),
    "accept": Rule(
        "recording the family's acceptance",
        grants(
            (Role.PARTICIPANT, Scope.SELF),
            (Role.COORDINATOR, Scope.ASSIGNED),
            (Role.REGIONAL_MANAGER, Scope.ON_BEHALF),
        ),
    ),
    # The rule says who may try; the plan's domain says which professional: the one who set the
    # requirement, or the one the regional manager named in their place.
    "sign_off": Rule("signing off the plan", grants((Role.PROFESSIONAL, Scope.REGION))),
    "signatory": Rule(
        "naming who signs off a minimum requirement",
        grants((Role.REGIONAL_MANAGER, Scope.REGION)),
    ),
    "distribute": Rule("distributing the plan", _WRITES),
    "handover": Rule("recording a copy handed over", _WRITES),
    "withdraw_sharing": Rule(
        "withdrawing consent to share the plan with an organisation",
        grants(
            (Role.PARTICIPANT, Scope.SELF),
            (Role.COORDINATOR, Scope.ASSIGNED),
            (Role.REGIONAL_MANAGER, Scope.ON_BEHALF),
        ),
    ),
    "copy": Rule(
        "fetching a partner's copy of the plan",
        grants((Role.PARTNER, Scope.ORGANISATION)),
    ),
}
