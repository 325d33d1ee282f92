"""Intake's read model: the list of requests, one row per case, kept from intake's own events
(``shared.views``). Indexed for what ``GET /cases`` filters on (region, stage, model) within
the caller's regions."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from services.intake.access import RULES
from services.intake.domain import Request, Stage
from shared.identity import Principal, fold
from shared.views import (
    BY_REGION,
    CASE_LIST_COUNTED,
    CASE_LIST_INDEXES,
    Column,
    Page,
    PageRequest,
    ReadModel,
    Table,
    Writer,
    columns,
)

CASES = Table(
    "cases",
    columns(
        "case_id:uuid",
        "seq:int",
        "model",
        "region",
        "region_key",
        Column("stage", "text", Stage),
        "submitted_at:time",
        "accepted_at:time",
        "follow_up_of:uuid",
    ),
    key=("case_id",),
    indexes=(
        *CASE_LIST_INDEXES,
        ("region_key", "model", "seq", "case_id"),
    ),
    counted_by=CASE_LIST_COUNTED,
)
#: What the list shows of a row (``seq`` and the folded region only order and scope it).
SHOWN = ("case_id", "model", "region", "stage", "submitted_at", "accepted_at", "follow_up_of")


class IntakeViews(ReadModel):
    tables = (CASES,)
    handles = (
        Request.Submitted,  # type: ignore[attr-defined]
        Request.Clarified,
        Request.Accepted,
        Request.Withdrawn,
    )

    def apply(self, event: Any, position: int, w: Writer) -> None:
        case_id: UUID = event.originator_id
        if isinstance(event, Request.Submitted):  # type: ignore[attr-defined]
            w.insert(
                "cases",
                case_id=case_id,
                seq=position,
                model=event.model,
                region=event.region,
                region_key=fold(event.region),
                stage=Stage.SUBMITTED.value,
                submitted_at=event.submitted_at,
                accepted_at=None,
                follow_up_of=getattr(event, "follow_up_of", None),
            )
        elif isinstance(event, Request.Clarified):
            w.update("cases", {"case_id": case_id}, stage=Stage.CLARIFIED.value)
        elif isinstance(event, Request.Accepted):
            w.update(
                "cases", {"case_id": case_id}, stage=Stage.ACCEPTED.value, accepted_at=event.at
            )
        elif isinstance(event, Request.Withdrawn):
            w.update("cases", {"case_id": case_id}, stage=Stage.WITHDRAWN.value)

    def cases_page(
        self,
        principal: Principal,
        request: PageRequest | None,
        *,
        stage: Stage | None = None,
        model: str | None = None,
        region: str | None = None,
    ) -> Page:
        """The requests of the caller's region(s), oldest first, filtered; the scoping is part
        of the query (a page is cut after it)."""
        return self.case_list(
            "cases",
            list_id="intake.cases",
            rule=RULES["list"],
            principal=principal,
            request=request,
            scope=BY_REGION,
            filters={
                "stage": ("stage", str(stage) if stage else None),
                "model": ("model", str(model) if model else None),
                "region": ("region_key", fold(region) if region else None),
            },
            shown=SHOWN,
        )

    def cases(self, principal: Principal, **filters: Any) -> list[dict[str, Any]]:
        """Every row ``cases_page`` would give, as one list."""
        return self.cases_page(principal, None, **filters).items
