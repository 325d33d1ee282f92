"""Plans' read model: the case list (one row per plan, with its region and coordinators for who
may see it) and the e-mail copies the delivery worker still has to send, kept from plans' own
events (``shared.views``). A plan is opened by whichever upstream event comes first, and each
fact on its row is set by the event that says it, so the rows end the same in any order."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from services.plans.access import RULES
from services.plans.domain import Channel, Plan, Stage
from shared.identity import Principal, fold
from shared.views import (
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
    columns,
    note_coordinators,
)

CASES = Table(
    "cases",
    columns(
        "case_id:uuid",
        "seq:int",
        "model",
        Column("stage", "text", Stage),
        "current_version:int",
        "distributed:bool",
        "distributed_version:int",
        "region",
        "region_key",
        "coordinator_ids:json",
    ),
    key=("case_id",),
    indexes=CASE_LIST_INDEXES,
    counted_by=CASE_LIST_COUNTED,
)
#: One row per e-mail copy a distribution left without a delivery record.
PENDING_EMAILS = Table(
    "pending_emails",
    columns("case_id:uuid", "version:int", "participant_id", "seq:int"),
    key=("case_id", "version", "participant_id"),
    indexes=(("seq",),),
)
#: One row per plan that heard of its accepted request and lacks the clarification's questions
#: and requirements: the claim check's work (``claims.py``), until intake answers.
AWAITING_CLARIFICATION = Table(
    "awaiting_clarification",
    columns("case_id:uuid", "seq:int"),
    key=("case_id",),
    indexes=(("seq",),),
)
SHOWN = ("case_id", "model", "stage", "current_version", "distributed", "distributed_version")


class PlansViews(ReadModel):
    #: Version 2: the plans awaiting their clarification.
    version = 2
    tables = (CASES, CASE_COORDINATORS, PENDING_EMAILS, AWAITING_CLARIFICATION)
    handles = (
        Plan.Opened,  # type: ignore[attr-defined]
        Plan.RequestNoted,
        Plan.CoordinatorNoted,  # type: ignore[attr-defined]
        Plan.ConferenceNoted,
        Plan.EndedWithoutConference,  # type: ignore[attr-defined]
        Plan.Written,
        Plan.Distributed,  # type: ignore[attr-defined]
        Plan.DeliveryRecorded,  # type: ignore[attr-defined]
        Plan.ClarificationNoted,  # type: ignore[attr-defined]
    )

    def apply(self, event: Any, position: int, w: Writer) -> None:
        case_id: UUID = event.originator_id
        where = {"case_id": case_id}
        if isinstance(event, Plan.Opened):  # type: ignore[attr-defined]
            w.insert(
                "cases",
                case_id=case_id,
                seq=position,
                model=event.model,
                stage=Stage.AWAITING_CONFERENCE.value,
                current_version=None,
                distributed=False,
                distributed_version=None,
                region=None,
                region_key=None,
                coordinator_ids=[],
            )
        elif isinstance(event, Plan.RequestNoted):
            region = event.region
            w.update("cases", where, region=region, region_key=fold(region) if region else None)
            w.insert("awaiting_clarification", case_id=case_id, seq=position)
        elif isinstance(event, Plan.ClarificationNoted):  # type: ignore[attr-defined]
            w.delete("awaiting_clarification", case_id=case_id)
        elif isinstance(event, Plan.CoordinatorNoted):  # type: ignore[attr-defined]
            ids = list(event.coordinator_ids)
            w.update("cases", where, coordinator_ids=ids)
            note_coordinators(w, case_id, ids)
        elif isinstance(event, Plan.ConferenceNoted):
            row = w.one("cases", case_id=case_id)
            if row is not None and row["stage"] == Stage.AWAITING_CONFERENCE:
                w.update("cases", where, stage=Stage.CONFERENCE_HELD.value)
        elif isinstance(event, Plan.EndedWithoutConference):  # type: ignore[attr-defined]
            with_plan = event.ending == "plan_without_meeting"
            stage = Stage.WITHOUT_MEETING if with_plan else Stage.STOPPED
            w.update("cases", where, stage=stage.value)
        elif isinstance(event, Plan.Written):
            w.update("cases", where, stage=Stage.WRITTEN.value, current_version=event.version)
        elif isinstance(event, Plan.Distributed):  # type: ignore[attr-defined]
            w.update(
                "cases",
                where,
                stage=Stage.DISTRIBUTED.value,
                distributed=True,
                distributed_version=event.version,
            )
            for recipient in event.recipients:
                if recipient.get("channel") == Channel.EMAIL.value:
                    w.insert(
                        "pending_emails",
                        case_id=case_id,
                        version=event.version,
                        participant_id=recipient["participant_id"],
                        seq=position,
                    )
        elif isinstance(event, Plan.DeliveryRecorded):  # type: ignore[attr-defined]
            w.delete(
                "pending_emails",
                case_id=case_id,
                version=event.version,
                participant_id=event.participant_id,
            )

    def cases_page(
        self,
        principal: Principal,
        request: PageRequest | None,
        *,
        stage: Stage | None = None,
        model: str | None = None,
    ) -> Page:
        """The cases plans knows that the caller may see, oldest first, by stage and model."""
        return self.case_list(
            "cases",
            list_id="plans.cases",
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

    def pending_emails(self) -> list[dict[str, Any]]:
        """Every e-mail copy still to be sent, oldest distribution first."""
        return self.select(
            "pending_emails", Clause("1 = 1"), order=("seq", "case_id", "participant_id")
        )

    def awaiting_clarification(self) -> list[UUID]:
        """The plans that heard of their accepted request and lack its clarification, in the
        order they heard of it."""
        rows = self.select("awaiting_clarification", Clause("1 = 1"), order=("seq", "case_id"))
        return [row["case_id"] for row in rows]
