"""Follow-up's read model: the follow-ups with their stage and next due time, every timer (for
the timer loop: what is due, by an index on the pending ones), and what followup heard of each
case's region and coordinators (who may see which follow-up), kept from followup's own events
(``shared.views``).

The region and coordinators come from intake and coordination, the follow-up from plans: they
arrive in any order, so a follow-up's row takes its region from the case's scope when it opens,
and a region heard later is written onto it then; the rows end the same either way."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from services.followup.access import RULES
from services.followup.domain import CaseScope, FollowUp, Stage, stage_of
from shared.identity import Principal, fold
from shared.views import (
    BY_REGION_OR_ASSIGNED,
    CASE_COORDINATORS,
    CASE_LIST_COUNTED,
    CASE_LIST_INDEXES,
    Column,
    Page,
    PageRequest,
    ReadModel,
    Table,
    Writer,
    columns,
    note_coordinators,
    to_db,
)

FOLLOW_UPS = Table(
    "follow_ups",
    columns(
        "case_id:uuid",
        "seq:int",
        "model",
        Column("stage", "text", Stage),
        "next_due_at:time",
        "outcomes:int",
        "region_key",
    ),
    key=("case_id",),
    indexes=CASE_LIST_INDEXES,
    counted_by=CASE_LIST_COUNTED,
)
TIMERS = Table(
    "timers",
    columns(
        "case_id:uuid",
        "timer_id",
        "kind",
        "due_at:time",
        "fired_at:time",
        "cancelled_at:time",
        "outcome_recorded:bool",
        #: Neither fired nor cancelled.
        "pending:bool",
    ),
    key=("case_id", "timer_id"),
    indexes=(("pending", "due_at"),),
)
SCOPES = Table(
    "scopes",
    columns("scope_id:uuid", "case_id:uuid", "region", "region_key", "coordinator_ids:json"),
    key=("scope_id",),
    indexes=(("case_id",),),
)
SHOWN = ("case_id", "model", "stage", "next_due_at", "outcomes")


class FollowupViews(ReadModel):
    tables = (FOLLOW_UPS, TIMERS, SCOPES, CASE_COORDINATORS)
    handles = (
        CaseScope.Opened,  # type: ignore[attr-defined]
        CaseScope.RegionNoted,  # type: ignore[attr-defined]
        CaseScope.CoordinatorsNoted,  # type: ignore[attr-defined]
        FollowUp.Opened,  # type: ignore[attr-defined]
        FollowUp.Scheduled,  # type: ignore[attr-defined]
        FollowUp.Due,  # type: ignore[attr-defined]
        FollowUp.Cancelled,  # type: ignore[attr-defined]
        FollowUp.OutcomeRecorded,  # type: ignore[attr-defined]
        FollowUp.MeetingRecorded,  # type: ignore[attr-defined]
    )

    def apply(self, event: Any, position: int, w: Writer) -> None:
        originator: UUID = event.originator_id
        if isinstance(event, CaseScope.Opened):  # type: ignore[attr-defined]
            w.insert(
                "scopes",
                scope_id=originator,
                case_id=event.case_id,
                region=None,
                region_key=None,
                coordinator_ids=[],
            )
        elif isinstance(event, CaseScope.RegionNoted):  # type: ignore[attr-defined]
            scope = w.one("scopes", scope_id=originator)
            if scope is not None:
                key = fold(event.region)
                w.update("scopes", {"scope_id": originator}, region=event.region, region_key=key)
                w.update("follow_ups", {"case_id": scope["case_id"]}, region_key=key)
        elif isinstance(event, CaseScope.CoordinatorsNoted):  # type: ignore[attr-defined]
            scope = w.one("scopes", scope_id=originator)
            if scope is not None:
                ids = list(event.coordinator_ids)
                w.update("scopes", {"scope_id": originator}, coordinator_ids=ids)
                note_coordinators(w, scope["case_id"], ids)
        elif isinstance(event, FollowUp.Opened):  # type: ignore[attr-defined]
            scope = w.one("scopes", case_id=originator)
            w.insert(
                "follow_ups",
                case_id=originator,
                seq=position,
                model=event.model,
                stage=Stage.SCHEDULED.value,
                next_due_at=None,
                outcomes=0,
                region_key=scope["region_key"] if scope else None,
            )
        elif isinstance(event, FollowUp.Scheduled):  # type: ignore[attr-defined]
            w.insert(
                "timers",
                case_id=originator,
                timer_id=event.timer_id,
                kind=event.kind,
                due_at=event.due_at,
                fired_at=None,
                cancelled_at=None,
                outcome_recorded=False,
                pending=True,
            )
            self._restage(w, originator)
        elif isinstance(event, FollowUp.Due):  # type: ignore[attr-defined]
            timer = {"case_id": originator, "timer_id": event.timer_id}
            w.update("timers", timer, fired_at=event.at, pending=False)
            self._restage(w, originator)
        elif isinstance(event, FollowUp.Cancelled):  # type: ignore[attr-defined]
            timer = {"case_id": originator, "timer_id": event.timer_id}
            w.update("timers", timer, cancelled_at=event.at, pending=False)
            self._restage(w, originator)
        elif isinstance(event, FollowUp.OutcomeRecorded):  # type: ignore[attr-defined]
            timer = {"case_id": originator, "timer_id": event.timer_id}
            w.update("timers", timer, outcome_recorded=True)
            self._restage(w, originator, outcome=True)
        elif isinstance(event, FollowUp.MeetingRecorded):  # type: ignore[attr-defined]
            # The family's own next meeting is a contact: its record is that contact's outcome.
            timer = {"case_id": originator, "timer_id": event.outcome.timer_id}
            w.update("timers", timer, outcome_recorded=True)
            self._restage(w, originator, outcome=True)

    @staticmethod
    def _restage(w: Writer, case_id: UUID, *, outcome: bool = False) -> None:
        """The follow-up's stage and next due time, from its timers (the aggregate's rule)."""
        row = w.one("follow_ups", case_id=case_id)
        if row is None:
            return
        timers = w.rows("timers", case_id=case_id)
        pending = [t["due_at"] for t in timers if t["pending"]]
        w.update(
            "follow_ups",
            {"case_id": case_id},
            stage=stage_of(timers).value,
            next_due_at=min(pending, default=None),
            outcomes=row["outcomes"] + (1 if outcome else 0),
        )

    # -- the lists -------------------------------------------------------------------------------
    def cases_page(
        self,
        principal: Principal,
        request: PageRequest | None,
        *,
        stage: Stage | None = None,
        model: str | None = None,
    ) -> Page:
        """The follow-ups the caller may see, oldest first, filtered."""
        return self.case_list(
            "follow_ups",
            list_id="followup.cases",
            rule=RULES["list"],
            principal=principal,
            request=request,
            scope=BY_REGION_OR_ASSIGNED,
            filters={
                "stage": ("stage", str(stage) if stage else None),
                "model": ("model", str(model) if model else None),
            },
            shown=SHOWN,
        )

    def cases(self, principal: Principal, **filters: Any) -> list[dict[str, Any]]:
        return self.cases_page(principal, None, **filters).items

    def cases_with_due_timers(self, now: datetime) -> list[UUID]:
        """Cases with a timer due by ``now`` that has not fired, the earliest due first."""
        rows = self.query(
            "SELECT case_id, MIN(due_at) AS due FROM {timers} WHERE pending = 1 AND due_at <= %s"
            " GROUP BY case_id ORDER BY MIN(due_at), case_id",
            [to_db("time", now)],
            {"case_id": "uuid"},
        )
        return [row["case_id"] for row in rows]
