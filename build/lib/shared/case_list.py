"""Every case's stage across the services, from each service's own list: what ``kring cases``
and the console's case board show.

No service reads another's store, so a client asks each one (``GET /cases``) and merges the rows
by case id. A case's stage is the furthest any service has taken it; a withdrawal or a stop
outranks everything, since nothing moves after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SERVICE_ORDER = ("intake", "coordination", "plans", "followup")

#: How far each stage takes a case. A stage not listed ranks by its service (below), so a new
#: stage in a service still sorts sensibly.
STAGE_RANK: Mapping[str, int] = {
    "submitted": 10,
    "clarified": 11,
    "accepted": 12,
    "awaiting_conference": 13,  # plans has heard of the case, nothing more
    "waiting_for_coordinator": 20,
    "coordinator_assigned": 21,
    "preparing": 22,
    "conference_scheduled": 23,
    "conference_held": 30,
    "plan_without_meeting": 30,
    "plan_written": 40,
    "plan_distributed": 41,
    "follow_up_scheduled": 50,
    "follow_up_due": 51,
    "followed_up": 52,
    "withdrawn": 100,
    "stopped": 100,
}
SERVICE_RANK = {"intake": 10, "coordination": 20, "plans": 40, "followup": 50}


@dataclass
class CaseRow:
    case_id: str
    model: str | None = None
    region: str | None = None
    stage: str = "unknown"
    stage_service: str = ""
    stages: dict[str, str] = field(default_factory=dict)
    coordinator_ids: list[str] = field(default_factory=list)
    overdue: bool = False
    follow_up_of: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "model": self.model,
            "region": self.region,
            "stage": self.stage,
            "stage_service": self.stage_service,
            "stages": self.stages,
            "coordinator_ids": self.coordinator_ids,
            "overdue": self.overdue,
            "follow_up_of": self.follow_up_of,
        }


def _rank(service: str, stage: str) -> int:
    return STAGE_RANK.get(stage, SERVICE_RANK.get(service, 0))


def merge(rows_by_service: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[CaseRow]:
    """One row per case, in the order intake lists them (cases intake does not know last)."""
    cases: dict[str, CaseRow] = {}
    for service in SERVICE_ORDER:
        for row in rows_by_service.get(service, ()):
            case_id = str(row["case_id"])
            case = cases.setdefault(case_id, CaseRow(case_id=case_id))
            case.model = case.model or row.get("model")
            case.region = case.region or row.get("region")
            case.follow_up_of = case.follow_up_of or row.get("follow_up_of")
            stage = str(row.get("stage", "unknown"))
            case.stages[service] = stage
            if service == "coordination":
                case.coordinator_ids = list(row.get("coordinator_ids") or [])
                case.overdue = bool(row.get("overdue"))
            if not case.stage_service or _rank(service, stage) >= _rank(
                case.stage_service, case.stage
            ):
                case.stage, case.stage_service = stage, service
    return list(cases.values())


def select(
    cases: Sequence[CaseRow],
    *,
    stage: str | None = None,
    model: str | None = None,
    region: str | None = None,
    coordinator: str | None = None,
    overdue: bool | None = None,
) -> list[CaseRow]:
    """Filter merged rows. ``stage`` is the stage a case is shown at (the furthest any service
    took it), not a stage some service passed it in on the way."""
    return [
        case
        for case in cases
        if (stage is None or stage == case.stage)
        and (model is None or case.model == model)
        and (region is None or (case.region or "").casefold() == region.casefold())
        and (coordinator is None or coordinator in case.coordinator_ids)
        and (overdue is None or case.overdue is overdue)
    ]
