"""Who may do what in the partners service, in one table: every HTTP route names one of these.

The registry is an operator's: registering, revoking, setting a webhook, rotating its secret,
resending, reading every delivery. A partner organisation's own client reads its own record and
its own deliveries, and asks for its own webhooks again from a time (``Scope.ORGANISATION``: the
organisation its token names is the one in the path); never another's. Nothing here is personal
data (organisations, ids, dates, delivery outcomes), so an operator reads it all.
"""

from __future__ import annotations

from shared.access import Rule, Scope, grants
from shared.actor import Role

_OPERATOR = grants((Role.OPERATOR, Scope.ANY))
_OPERATOR_OR_OWN = grants((Role.OPERATOR, Scope.ANY), (Role.PARTNER, Scope.ORGANISATION))

RULES: dict[str, Rule] = {
    "register": Rule("registering a partner", _OPERATOR),
    "list": Rule("listing the partners", _OPERATOR),
    "read": Rule("reading a partner", _OPERATOR_OR_OWN),
    "webhook": Rule("setting a partner's webhook", _OPERATOR),
    "rotate": Rule("rotating a partner's webhook secret", _OPERATOR),
    "revoke": Rule("revoking a partner", _OPERATOR),
    "deliveries": Rule("reading a partner's deliveries", _OPERATOR_OR_OWN),
    "case_deliveries": Rule("reading a case's deliveries to partners", _OPERATOR),
    "resend": Rule("sending a notification again", _OPERATOR),
    "replay": Rule("sending a partner's webhooks again from a time", _OPERATOR_OR_OWN),
    "history": Rule("reading the partners service's history of a case", _OPERATOR),
}
