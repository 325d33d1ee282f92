"""The request (aanvraag) and its rules. No I/O.

Anyone may request a conference. The regional manager (regiomanager) clarifies it: one or more
conference questions (conferentievragen), the funding (financiering) and, where safety is at
stake, minimum requirements for a safe plan (minimumeisen), each set by a professional. A
clarified request is accepted for a conference, or the request is withdrawn. Acceptance is what
the rest of Kring hears about.
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
    CLARIFIED = "clarified"
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
        self.conference_questions: list[str] = []
        self.funding: dict[str, Any] | None = None
        self.minimum_requirements: list[dict[str, Any]] = []
        self.stage = Stage.SUBMITTED

    def clarify(
        self,
        *,
        conference_questions: list[str],
        funding: dict[str, Any],
        minimum_requirements: list[dict[str, Any]],
        actor: dict[str, str],
    ) -> None:
        """Record (or revise, until acceptance) the regional manager's clarification."""
        self.check_is_open("clarified")
        if not conference_questions:
            raise DomainRuleError("a clarification needs at least one conference question")
        self._clarified(
            conference_questions=conference_questions,
            funding=funding,
            minimum_requirements=minimum_requirements,
            actor=actor,
        )

    @event("Clarified")
    def _clarified(
        self,
        *,
        conference_questions: list[str],
        funding: dict[str, Any],
        minimum_requirements: list[dict[str, Any]],
        actor: dict[str, str],
    ) -> None:
        self.conference_questions = conference_questions
        self.funding = funding
        self.minimum_requirements = minimum_requirements
        self.stage = Stage.CLARIFIED

    def accept(self, *, at: datetime, actor: dict[str, str]) -> None:
        self.check_is_open("accepted")
        if self.stage is not Stage.CLARIFIED:
            raise DomainRuleError(
                "a request is accepted once it is clarified: record the conference question(s)"
                " and funding first"
            )
        self._accepted(
            at=at,
            actor=actor,
            model=self.model,
            region=self.region,
            languages=self.languages,
            informational_talk=self.informational_talk,
            submitted_at=self.submitted_at,
            has_minimum_requirements=bool(self.minimum_requirements),
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
        has_minimum_requirements: bool = False,  # absent in events stored before it existed
    ) -> None:
        # The event carries what coordination needs, so the relay can translate it alone.
        self.accepted_at = at
        self.stage = Stage.ACCEPTED

    def withdraw(self, *, reason: str, at: datetime, actor: dict[str, str]) -> None:
        self.check_is_open("withdrawn")
        self._withdrawn(reason=reason, at=at, actor=actor)

    @event("Withdrawn")
    def _withdrawn(self, *, reason: str, at: datetime, actor: dict[str, str]) -> None:
        self.withdrawal_reason = reason
        self.stage = Stage.WITHDRAWN

    def check_is_open(self, wanted: str) -> None:
        if self.stage not in (Stage.SUBMITTED, Stage.CLARIFIED):
            raise DomainRuleError(f"a request that is {self.stage.value} cannot be {wanted}")
