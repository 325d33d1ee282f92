"""The export's tables: their columns, the rows one run adds (the fold's sink), and the cases'
tables made whole from the facts. Columnar (pyarrow) throughout; no I/O here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time
from typing import Any

import pyarrow as pa

from kring.analytics.facts import (
    ERASED_CASE,
    ZONE,
    AttendanceFact,
    CaseFacts,
    Months,
    OutcomeFact,
    RatingFact,
    Sink,
    in_window,
    months_of,
)
from shared.envelope import Delivered
from shared.events import ConferenceHeld, PlanDistributed, RequestReceived

TS = pa.timestamp("us", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    "cases": pa.schema(
        [
            ("case_pseudonym", pa.string()),
            ("model", pa.string()),
            ("region", pa.string()),
            ("requester_relation", pa.string()),
            ("informational_talk", pa.bool_()),
            ("is_follow_up", pa.bool_()),
            ("follow_up_of", pa.string()),
            ("submitted_at", TS),
            ("accepted_at", TS),
            ("outcome", pa.string()),
            ("stop_reason", pa.string()),
            ("stop_stage", pa.string()),
            ("attended", pa.int32()),
            ("children", pa.int32()),
            ("plan_versions", pa.int32()),
            ("follow_up_conferences", pa.int32()),
            ("month", pa.string()),
        ]
    ),
    "stage_times": pa.schema(
        [
            ("case_pseudonym", pa.string()),
            ("model", pa.string()),
            ("stage", pa.string()),
            ("at", TS),
            ("days_from_request", pa.float64()),
            ("month", pa.string()),
        ]
    ),
    "events": pa.schema(
        [
            ("case_pseudonym", pa.string()),
            ("model", pa.string()),
            ("type", pa.string()),
            ("version", pa.int32()),
            ("origin", pa.string()),
            ("at", TS),
            ("month", pa.string()),
        ]
    ),
    "attendance": pa.schema(
        [
            ("case_pseudonym", pa.string()),
            ("held_on", pa.date32()),
            ("role", pa.string()),
            ("attended", pa.int32()),
            ("information", pa.int32()),
            ("plan_making", pa.int32()),
            ("presentation", pa.int32()),
            ("month", pa.string()),
        ]
    ),
    "outcomes": pa.schema(
        [
            ("case_pseudonym", pa.string()),
            ("recorded_at", TS),
            ("kind", pa.string()),
            ("timer_id", pa.string()),
            ("reached", pa.bool_()),
            ("agreement", pa.string()),
            ("result", pa.string()),
            ("month", pa.string()),
        ]
    ),
    "ratings": pa.schema(
        [
            ("case_pseudonym", pa.string()),
            ("recorded_at", TS),
            ("kind", pa.string()),
            ("respondent_group", pa.string()),
            ("meeting", pa.int32()),
            ("plan", pa.int32()),
            ("month", pa.string()),
        ]
    ),
    "organisations": pa.schema(
        [
            ("case_pseudonym", pa.string()),
            ("organisation", pa.string()),
            ("relation", pa.string()),
            ("at", TS),
            ("month", pa.string()),
        ]
    ),
}
#: Rewritten whole from the facts on every run.
CASE_TABLES = ("cases", "stage_times")
#: One row per event, appended run after run.
EVENT_TABLES = ("events", "attendance", "outcomes", "ratings", "organisations")

#: The stages a case's times are given for: (stage, when).
STAGES: tuple[tuple[str, Callable[[CaseFacts], datetime | date | None]], ...] = (
    ("submitted", lambda f: f.submitted_at),
    ("withdrawn_before_acceptance", lambda f: f.withdrawn_before_acceptance_at),
    ("accepted", lambda f: f.accepted_at),
    ("coordinator_assigned", lambda f: f.assigned_at),
    ("first_contact", lambda f: f.contacted_at),
    ("conference_held", lambda f: f.held_on),
    ("ended_without_conference", lambda f: f.ended_at),
    ("withdrawn_after_acceptance", lambda f: f.withdrawn_after_acceptance_at),
    ("plan_distributed", lambda f: f.distributed_at),
    ("follow_up_due", lambda f: f.follow_up_due_at),
    ("outcome_recorded", lambda f: f.outcome_recorded_at),
)


#: The column each event table's month (its partition) is taken from.
MONTH_OF: dict[str, str] = {
    "events": "at",
    "attendance": "held_on",
    "outcomes": "recorded_at",
    "ratings": "recorded_at",
    "organisations": "at",
}


class Rows(Sink):
    """The event tables' new rows of one run (the fold's sink). An event is kept as it came
    (one append per event: this runs for every event read) and turned into columns, months
    and all, once at the end."""

    def __init__(
        self,
        months: Months,
        since: datetime | None,
        until: datetime | None,
        organisations: bool,
    ) -> None:
        self.months = months
        self.since, self.until = since, until
        self._windowed = since is not None or until is not None
        self.organisations = organisations
        #: (case, type, version, origin, model, time), for the events table: plain values, so
        #: nothing else of the event is kept alive
        self.events: list[tuple[str, str, int, str, str, datetime]] = []
        self._origins: dict[str, str] = {}
        self.columns: dict[str, dict[str, list[Any]]] = {
            table: {name: [] for name in SCHEMAS[table].names if name != "month"}
            for table in EVENT_TABLES
            if table != "events"
        }
        self._admitted = True

    def event(self, case: str, delivered: Delivered) -> None:
        if self._windowed:
            self._admitted = in_window(delivered.time, self.since, self.until)
            if not self._admitted:
                return
        event = delivered.event
        origin = self._origins.setdefault(delivered.origin, delivered.origin)
        self.events.append(
            (case, event.name, event.version, origin, event.model.value, delivered.time)
        )
        if self.organisations:
            self._organisations(case, delivered)

    def _organisations(self, case: str, delivered: Delivered) -> None:
        event = delivered.event
        found: list[tuple[str, str]] = []
        if isinstance(event, RequestReceived):
            found = [(o, "involved") for o in event.involved_organisations]
        elif isinstance(event, ConferenceHeld):
            found = [(p.organisation, "professional") for p in event.participants if p.organisation]
        elif isinstance(event, PlanDistributed):
            found = [(o, "shared_with") for o in event.shared_with_organisations]
        for organisation, relation in found:
            self._append(
                "organisations",
                case_pseudonym=case,
                organisation=organisation,
                relation=relation,
                at=delivered.time,
            )

    def attendance(self, row: AttendanceFact) -> None:
        if not self._admitted:
            return
        self._append(
            "attendance",
            case_pseudonym=row.case,
            held_on=row.held_on,
            role=row.role,
            attended=row.attended,
            information=row.by_part.get("information"),
            plan_making=row.by_part.get("plan_making"),
            presentation=row.by_part.get("presentation"),
        )

    def outcome(self, row: OutcomeFact) -> None:
        if not self._admitted:
            return
        for agreement, result in row.agreements.items() or [(None, None)]:
            self._append(
                "outcomes",
                case_pseudonym=row.case,
                recorded_at=row.recorded_at,
                kind=row.kind,
                timer_id=row.timer_id,
                reached=row.reached,
                agreement=agreement,
                result=result,
            )

    def rating(self, row: RatingFact) -> None:
        if not self._admitted:
            return
        self._append(
            "ratings",
            case_pseudonym=row.case,
            recorded_at=row.recorded_at,
            kind=row.kind,
            respondent_group=row.by,
            meeting=row.meeting,
            plan=row.plan,
        )

    def _append(self, table: str, **values: Any) -> None:
        columns = self.columns[table]
        for name, value in values.items():
            columns[name].append(value)

    def table(self, name: str, erased: set[str]) -> pa.Table:
        schema = SCHEMAS[name]
        if name == "events":
            names = ("case_pseudonym", "type", "version", "origin", "model", "at")
            columns: dict[str, Any] = {
                name: [row[i] for row in self.events] for i, name in enumerate(names)
            }
        else:
            columns = dict(self.columns[name])
        without_month = schema.remove(schema.get_field_index("month"))
        built = without(pa.Table.from_pydict(columns, schema=without_month), erased)
        return built.append_column(
            schema.field("month"), pa.array(_months(built, name), pa.string())
        )


def _months(table: pa.Table, name: str) -> list[str]:
    column = table[MONTH_OF[name]]
    if pa.types.is_date32(column.type):
        return [f"{d.year:04d}-{d.month:02d}" for d in column.to_pylist()]
    return months_of(column.cast(pa.int64()).to_numpy(zero_copy_only=False))


def case_tables(
    cases: Iterator[CaseFacts], months: Months, since: datetime | None, until: datetime | None
) -> dict[str, pa.Table]:
    """The cases and their stage times, for the cases whose request was made in the window."""
    rows: dict[str, dict[str, list[Any]]] = {
        table: {name: [] for name in SCHEMAS[table].names} for table in CASE_TABLES
    }
    case_rows, stage_rows = rows["cases"], rows["stage_times"]
    for f in cases:
        if f.submitted_at is None or not in_window(f.submitted_at, since, until):
            continue
        month = months.of(f.submitted_at)
        stop_stage = f.stop_stage
        for name, value in (
            ("case_pseudonym", f.case),
            ("model", f.model),
            ("region", f.region),
            ("requester_relation", f.requester_relation),
            ("informational_talk", f.informational_talk),
            ("is_follow_up", f.follow_up_of is not None),
            # A follow-up of an erased case does not name it.
            ("follow_up_of", None if f.follow_up_of == ERASED_CASE else f.follow_up_of),
            ("submitted_at", f.submitted_at),
            ("accepted_at", f.accepted_at),
            ("outcome", f.outcome.value),
            ("stop_reason", f.why_stopped),
            ("stop_stage", stop_stage.value if stop_stage else None),
            ("attended", f.attended),
            ("children", f.children),
            ("plan_versions", f.plan_versions),
            ("follow_up_conferences", f.follow_up_conferences),
            ("month", month),
        ):
            case_rows[name].append(value)
        for stage, when in STAGES:
            moment = when(f)
            if moment is None:
                continue
            at = (
                moment
                if isinstance(moment, datetime)
                else datetime.combine(moment, time(), tzinfo=ZONE).astimezone(UTC)
            )
            stage_row: tuple[tuple[str, Any], ...] = (
                ("case_pseudonym", f.case),
                ("model", f.model),
                ("stage", stage),
                ("at", at),
                ("days_from_request", f.days_from_request(moment)),
                ("month", month),
            )
            for name, value in stage_row:
                stage_rows[name].append(value)
    return {
        table: pa.Table.from_pydict(columns, schema=SCHEMAS[table])
        for table, columns in rows.items()
    }


def without(table: pa.Table, erased: set[str]) -> pa.Table:
    if not erased or table.num_rows == 0:
        return table
    import pyarrow.compute as pc

    keep = pc.invert(pc.is_in(table["case_pseudonym"], value_set=pa.array(sorted(erased))))
    return table.filter(keep)
