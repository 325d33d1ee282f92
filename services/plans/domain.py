"""The plan (het plan) and its rules. No I/O.

After the conference the coordinator writes up the plan; every revision is a new version and
old versions stay readable. Only a written plan of a held conference can be distributed.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from shared.http import DomainRuleError


class Stage(StrEnum):
    AWAITING_CONFERENCE = "awaiting_conference"
    CONFERENCE_HELD = "conference_held"
    WITHOUT_MEETING = "plan_without_meeting"
    STOPPED = "stopped"
    WRITTEN = "plan_written"
    DISTRIBUTED = "plan_distributed"


class Plan(Aggregate):
    """One case's plan, with all its versions."""

    @event("Opened")
    def __init__(self, id: UUID, *, model: str, actor: dict[str, str]) -> None:
        self.model = model
        self.coordinator_ids: list[str] = []
        self.held_on: date | None = None
        self.versions: list[dict[str, Any]] = []
        self.distributions: list[dict[str, Any]] = []
        self.stage = Stage.AWAITING_CONFERENCE

    @event("CoordinatorNoted")
    def note_coordinator(self, *, coordinator_ids: list[str], actor: dict[str, str]) -> None:
        self.coordinator_ids = coordinator_ids

    @event("ConferenceNoted")
    def note_conference(self, *, held_on: date, actor: dict[str, str]) -> None:
        self.held_on = held_on
        if self.stage is Stage.AWAITING_CONFERENCE:
            self.stage = Stage.CONFERENCE_HELD

    @event("EndedWithoutConference")
    def note_ended_without_conference(self, *, ending: str, actor: dict[str, str]) -> None:
        # A plan made without a meeting is written up all the same; a stopped case has none.
        self.stage = Stage.WITHOUT_MEETING if ending == "plan_without_meeting" else Stage.STOPPED

    def write(self, *, content: dict[str, Any], at: datetime, actor: dict[str, str]) -> int:
        if self.stage is Stage.STOPPED:
            raise DomainRuleError("the case was stopped before a conference: there is no plan")
        if self.stage is Stage.AWAITING_CONFERENCE:
            raise DomainRuleError("a plan can be written up only after the conference was held")
        self._written(version=len(self.versions) + 1, content=content, at=at, actor=actor)
        return len(self.versions)

    @event("Written")
    def _written(
        self, *, version: int, content: dict[str, Any], at: datetime, actor: dict[str, str]
    ) -> None:
        self.versions.append({"version": version, "content": content, "written_at": at})
        self.stage = Stage.WRITTEN

    def distribute(
        self,
        *,
        recipients: list[dict[str, str | None]],
        shared_with_organisations: list[str],
        at: datetime,
        actor: dict[str, str],
    ) -> None:
        if not self.versions:
            raise DomainRuleError("there is no written plan to distribute")
        if not recipients:
            raise DomainRuleError("a plan goes to every participant: name the recipients")
        latest = self.versions[-1]
        if any(d["version"] == latest["version"] for d in self.distributions):
            raise DomainRuleError(f"version {latest['version']} was already distributed")
        self._distributed(
            version=latest["version"],
            recipients=recipients,
            shared_with_organisations=shared_with_organisations,
            next_meeting_on=latest["content"].get("next_meeting_on"),
            model=self.model,
            at=at,
            actor=actor,
        )

    @event("Distributed")
    def _distributed(
        self,
        *,
        version: int,
        recipients: list[dict[str, str | None]],
        shared_with_organisations: list[str],
        next_meeting_on: str | None,
        model: str,
        at: datetime,
        actor: dict[str, str],
    ) -> None:
        self.distributions.append({"version": version, "recipients": recipients, "at": at})
        self.stage = Stage.DISTRIBUTED
