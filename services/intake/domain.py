"""The request (aanvraag) and its rules. No I/O.

Anyone may request a conference; the regional manager (regiomanager) accepts it for a
conference, or it is withdrawn. Acceptance is what the rest of Kring hears about.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from shared.http import DomainRuleError


class Stage(StrEnum):
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    WITHDRAWN = "withdrawn"


class Request(Aggregate):
    """A request for a conference (aanvraag). Its id is the case id across Kring."""

    @event("Submitted")
    def __init__(
        self,
        id: UUID,
        *,
        requester: dict[str, Any],
        central_persons: list[str],
        model: str,
        region: str,
        languages: list[str],
        description: str,
        informational_talk: bool,
        submitted_at: datetime,
        actor: dict[str, str],
    ) -> None:
        self.requester = requester
        self.central_persons = central_persons
        self.model = model
        self.region = region
        self.languages = languages
        self.description = description
        self.informational_talk = informational_talk
        self.submitted_at = submitted_at
        self.accepted_at: datetime | None = None
        self.withdrawal_reason: str | None = None
        self.stage = Stage.SUBMITTED

    def accept(self, *, at: datetime, actor: dict[str, str]) -> None:
        self.check_is_submitted("accepted")
        self._accepted(
            at=at,
            actor=actor,
            model=self.model,
            region=self.region,
            languages=self.languages,
            informational_talk=self.informational_talk,
            submitted_at=self.submitted_at,
        )

    @event("Accepted")
    def _accepted(
        self,
        *,
        at: datetime,
        actor: dict[str, str],
        model: str,
        region: str,
        languages: list[str],
        informational_talk: bool,
        submitted_at: datetime,
    ) -> None:
        # The event carries what coordination needs, so the relay can translate it alone.
        self.accepted_at = at
        self.stage = Stage.ACCEPTED

    def withdraw(self, *, reason: str, at: datetime, actor: dict[str, str]) -> None:
        self.check_is_submitted("withdrawn")
        self._withdrawn(reason=reason, at=at, actor=actor)

    @event("Withdrawn")
    def _withdrawn(self, *, reason: str, at: datetime, actor: dict[str, str]) -> None:
        self.withdrawal_reason = reason
        self.stage = Stage.WITHDRAWN

    def check_is_submitted(self, wanted: str) -> None:
        if self.stage is not Stage.SUBMITTED:
            raise DomainRuleError(f"a request that is {self.stage.value} cannot be {wanted}")
