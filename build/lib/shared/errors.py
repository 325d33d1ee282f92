"""The errors every service's rules raise, as types; each edge maps them once (HTTP: 409, 422
naming the field, 404 in ``shared.http``). No I/O and no framework here: domains import this."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID


class DomainRuleError(Exception):
    """A command that would break a rule of the domain (an invalid transition)."""


class InvalidFieldError(ValueError):
    """A field of a command names something the case does not have (an unknown participant,
    agreement or timer id, a coordinator not in the pool) or a value it cannot take: invalid
    input, answered 422 naming the field."""

    def __init__(self, loc: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.loc = tuple(loc)
        self.message = message


class NotFoundError(LookupError):
    """Something a path names does not exist (a case, a participant, a version): 404."""


class CaseNotFoundError(NotFoundError):
    def __init__(self, case_id: UUID) -> None:
        super().__init__(f"case {case_id} not found")
        self.case_id = case_id


class NotPermittedError(Exception):
    """The caller's role or scope does not allow what they asked: 403 with what is missing
    ("clarify the request needs the role regional_manager for region Utrecht"). Not a conflict
    with the case's state, which is ``DomainRuleError``."""
