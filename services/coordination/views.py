"""Coordination's read model: the case list (one row per case, with who coordinates it) and
the cases waiting for a coordinator, kept from coordination's own events (``shared.views``).
Indexed for ``GET /cases``'s filters (region, stage, model, coordinator, overdue) within the
caller's regions or their own cases, for ``GET /cases/unassigned`` and for the overdue job.

The pool (``pool.py``) is not a table: it is one aggregate, loaded and kept up to date in
memory, snapshotted; the case view's relations come from it, wherever a relation was declared
from (before or after the case arrived)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from services.coordination.access import RULES
from services.coordination.domain import (
    ENDED,
    CoordinatedCase,
    Stage,
    derive_stage,
    first_contact_overdue,
)
from shared.application import KringApplication
from shared.clock import Clock
from shared.identity import Principal, fold
from shared.views import (
    ASSIGNED,
    BY_REGION,
    BY_REGION_OR_ASSIGNED,
    CASE_COORDINATORS,
    CASE_LIST_COUNTED,
    CASE_LIST_INDEXES,
    Clause,
    Column,
    Page,
    PageRequest,
    ReadModel,
    Table,
    Writer,
    all_of,
    by_region_alone,
    columns,
    note_coordinators,
    scoped,
    to_db,
)

CASES = Table(
    "cases",
    columns(
        "case_id:uuid",
        "seq:int",
        "model",
        "region",
        "region_key",
        "coordinators_needed:int",
        "follow_up_of:uuid",
        "accepted_at:time",
        "coordinator_ids:json",
        "waiting_reason",
        "first_contact_due:time",
        "contacted_at:time",
        "overdue_recorded_for:time",
        "scheduled_on:date",
        "held_on:date",
        "ended",
        Column("stage", "text", Stage),
        #: How many coordinators the case still waits for (0 once it has its set, or is over).
        "missing:int",
    ),
    key=("case_id",),
    indexes=(
        *CASE_LIST_INDEXES,
        ("region_key", "model", "seq", "case_id"),
        ("stage", "first_contact_due"),
        ("missing", "region_key", "seq", "case_id"),
    ),
    counted_by=CASE_LIST_COUNTED,
)
#: Who coordinates which case now: a coordinator's own list, and the filter by coordinator.
SHOWN = (
    "case_id",
    "model",
    "region",
    "stage",
    "coordinator_ids",
    "coordinators_needed",
    "waiting_reason",
    "first_contact_due",
    "contacted_at",
    "scheduled_on",
    "held_on",
    "follow_up_of",
    "accepted_at",
)
_CASE = CoordinatedCase  # eventsourcing makes the event classes on the aggregate


class CoordinationViews(ReadModel):
    tables = (CASES, CASE_COORDINATORS)
    handles = (
        _CASE.Received,
        _CASE.WaitingForCoordinator,
        _CASE.CoordinatorAssigned,
        _CASE.CoordinatorsReleased,  # type: ignore[attr-defined]
        _CASE.FirstContactMade,
        _CASE.FirstContactOverdue,  # type: ignore[attr-defined]
        _CASE.ConferenceScheduled,  # type: ignore[attr-defined]
        _CASE.ConferenceHeld,
        _CASE.EndedWithoutConference,  # type: ignore[attr-defined]
    )

    def __init__(self, app: KringApplication, clock: Clock) -> None:
        super().__init__(app)
        #: What ``overdue`` is judged by when the caller names no moment.
        self.clock = clock

    def apply(self, event: Any, position: int, w: Writer) -> None:
        case_id: UUID = event.originator_id
        name = type(event).__name__
        if name == "Received":
            needed = event.coordinators_needed
            w.insert(
                "cases",
                case_id=case_id,
                seq=position,
                model=event.model,
                region=event.region,
                region_key=fold(event.region),
                coordinators_needed=needed,
                follow_up_of=event.follow_up_of,
                accepted_at=event.accepted_at,
                coordinator_ids=[],
                waiting_reason=None,
                first_contact_due=None,
                contacted_at=None,
                overdue_recorded_for=None,
                scheduled_on=None,
                held_on=None,
                ended=None,
                stage=Stage.WAITING.value,
                missing=needed,
            )
        elif name == "WaitingForCoordinator":
            self._change(w, case_id, waiting_reason=event.reason)
        elif name == "CoordinatorAssigned":
            ids = list(event.coordinator_ids)
            note_coordinators(w, case_id, ids)
            self._change(
                w,
                case_id,
                coordinator_ids=ids,
                first_contact_due=event.first_contact_due,
                waiting_reason=event.waiting_reason,
            )
        elif name == "CoordinatorsReleased":
            note_coordinators(w, case_id, [])
            self._change(w, case_id, coordinator_ids=[], waiting_reason=event.waiting_reason)
        elif name == "FirstContactMade":
            self._change(w, case_id, contacted_at=event.at)
        elif name == "FirstContactOverdue":
            self._change(w, case_id, overdue_recorded_for=event.due)
        elif name == "ConferenceScheduled":
            self._change(w, case_id, scheduled_on=event.on)
        elif name == "ConferenceHeld":
            self._change(w, case_id, held_on=event.held_on)
        elif name == "EndedWithoutConference":
            self._change(w, case_id, ended=event.ending)

    @staticmethod
    def _change(w: Writer, case_id: UUID, **changes: Any) -> None:
        """Change the row, and its stage with it (the rule the aggregate follows)."""
        row = w.one("cases", case_id=case_id)
        if row is None:
            return
        row |= changes
        stage = derive_stage(
            ended=row["ended"],
            held=row["held_on"] is not None,
            coordinators=bool(row["coordinator_ids"]),
            contacted=row["contacted_at"] is not None,
            scheduled=row["scheduled_on"] is not None,
        )
        missing = row["coordinators_needed"] - len(row["coordinator_ids"])
        changes |= {"stage": stage.value, "missing": 0 if stage in ENDED else max(0, missing)}
        w.update("cases", {"case_id": case_id}, **changes)

    # -- the lists -------------------------------------------------------------------------------
    def cases_page(
        self,
        principal: Principal | None,
        request: PageRequest | None,
        *,
        now: datetime | None = None,
        stage: str | None = None,
        model: str | None = None,
        region: str | None = None,
        coordinator_id: str | None = None,
        overdue: bool | None = None,
    ) -> Page:
        """The cases the caller may see (every case for the service itself: ``principal``
        None), oldest first, filtered; ``overdue`` is judged by ``now``."""
        rule = RULES["list"]
        now = now or self.clock.now()
        scope = None
        if principal is not None:
            rule.check_role(principal)
            columns = BY_REGION_OR_ASSIGNED
            scope = scoped(rule, principal, columns, self)
        filters = {
            "stage": str(stage) if stage else None,
            "model": str(model) if model else None,
            "region": fold(region) if region else None,
            "coordinator_id": coordinator_id,
            "overdue": overdue,
        }
        overdue_now = Clause(
            "stage = %s AND first_contact_due IS NOT NULL AND first_contact_due < %s",
            (Stage.ASSIGNED.value, to_db("time", now)),
        )
        where = all_of(
            [
                scope,
                Clause("stage = %s", (filters["stage"],)) if stage else None,
                Clause("model = %s", (filters["model"],)) if model else None,
                Clause("region_key = %s", (filters["region"],)) if region else None,
                Clause(ASSIGNED, (coordinator_id,)) if coordinator_id else None,
                overdue_now if overdue else None,
                Clause(f"NOT ({overdue_now.sql})", overdue_now.params)
                if overdue is False
                else None,
            ]
        )
        counted = (principal is None or by_region_alone(rule, principal)) and not (
            coordinator_id or overdue is not None
        )
        page = self.page(
            "cases",
            list_id="coordination.cases",
            filters=filters,
            where=where,
            request=request,
            counted=counted,
        )
        page.items = [_shown(row, now) for row in page.items]
        return page

    def cases(self, principal: Principal | None = None, **filters: Any) -> list[dict[str, Any]]:
        """Every row ``cases_page`` would give, as one list."""
        return self.cases_page(principal, None, **filters).items

    def unassigned_page(self, principal: Principal, request: PageRequest | None) -> Page:
        """Cases of the caller's region(s) waiting for a coordinator, or for the second one
        they need, each with why."""
        rule = RULES["unassigned"]
        rule.check_role(principal)
        where = all_of(
            [
                scoped(rule, principal, BY_REGION, self),
                Clause("missing > 0"),
            ]
        )
        page = self.page(
            "cases", list_id="coordination.unassigned", filters={}, where=where, request=request
        )
        page.items = [
            {
                k: row[k]
                for k in (
                    "case_id",
                    "model",
                    "region",
                    "stage",
                    "coordinator_ids",
                    "coordinators_needed",
                    "missing",
                    "waiting_reason",
                    "accepted_at",
                )
            }
            for row in page.items
        ]
        return page

    def overdue_unrecorded(self, now: datetime) -> list[dict[str, Any]]:
        """Cases whose first contact is overdue by ``now`` and not yet recorded as overdue for
        this deadline (the overdue job's work)."""
        return self.select(
            "cases",
            Clause(
                "stage = %s AND first_contact_due < %s AND (overdue_recorded_for IS NULL"
                " OR overdue_recorded_for <> first_contact_due)",
                (Stage.ASSIGNED.value, to_db("time", now)),
            ),
            order=("first_contact_due", "case_id"),
        )


def _shown(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    shown = {k: row[k] for k in SHOWN}
    shown["overdue"] = first_contact_overdue(row["stage"], row["first_contact_due"], now)
    return shown
