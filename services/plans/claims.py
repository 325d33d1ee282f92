"""Plans asks intake for what the plan needs of the clarification: the conference questions
(the plan says which agreements answer which) and the minimum requirements (printed on every
copy; their sign-off belongs to the professional who set each). A claim check over core NATS
with plans' own identity (``shared.claims``): the text never goes on the stream, it is kept in
plans' store under the case's key, and erased with the case.

It asks for every plan whose accepted request it heard of and that lacks them, each tick, until
intake answers; a distribution waits for the answer (``Plan.distribution_blockers``)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from uuid import UUID

from services.plans.app import PlansApplication
from services.plans.domain import Plan
from shared.bus import Bus
from shared.claims import (
    CLARIFICATION_SUBJECT,
    ClaimOutcome,
    ClarificationAnswer,
    ClarificationClaim,
)
from shared.logging import get_logger
from shared.projection import LogProjection

log = get_logger(__name__)


class ClarificationFetcher:
    def __init__(
        self, app: PlansApplication, *, tick_seconds: float = 1.0, timeout_seconds: float = 2.0
    ) -> None:
        self.app = app
        self.tick_seconds = tick_seconds
        self.timeout_seconds = timeout_seconds
        self.bus: Bus | None = None
        self._waiting: dict[UUID, None] = {}
        self._lock = threading.Lock()
        self._projection = LogProjection(app, self._project, forget=self._forget)

    def attach(self, bus: Bus) -> None:
        self.bus = bus

    def waiting(self) -> list[UUID]:
        """The plans that heard of their accepted request and lack its clarification."""
        self._projection.catch_up()
        with self._lock:
            return list(self._waiting)

    async def fetch_clarifications(self) -> None:
        """The service's background job: a round every tick, forever."""
        while True:
            await self.fetch_waiting()
            await asyncio.sleep(self.tick_seconds)

    async def fetch_waiting(self) -> int:
        """One round: ask intake once for every plan waiting. Returns how many got theirs."""
        if self.bus is None or not self.bus.ready:
            return 0
        noted = 0
        for case_id in await asyncio.to_thread(self.waiting):
            try:
                answer = await self.ask(case_id)
            except Exception as error:  # intake not answering now: the next round asks again
                log.warning("claim.unanswered", case_id=str(case_id), error=type(error).__name__)
                continue
            if answer.outcome is ClaimOutcome.FOUND and answer.clarification is not None:
                if await asyncio.to_thread(
                    self.app.note_clarification, case_id, answer.clarification
                ):
                    log.info("claim.noted", case_id=str(case_id))
                    noted += 1
            elif answer.outcome is ClaimOutcome.ERASED:
                with self._lock:  # CaseErased erases it here too; never ask again meanwhile
                    self._waiting.pop(case_id, None)
        return noted

    async def ask(self, case_id: UUID) -> ClarificationAnswer:
        assert self.bus is not None
        reply = await self.bus.broker.connection.request(
            CLARIFICATION_SUBJECT,
            ClarificationClaim(case_id=case_id).model_dump_json().encode(),
            timeout=self.timeout_seconds,
        )
        return ClarificationAnswer.model_validate_json(reply.data)

    def _forget(self, case_id: UUID) -> None:
        with self._lock:
            self._waiting.pop(case_id, None)

    def _project(self, event: Any) -> None:
        with self._lock:
            if isinstance(event, Plan.RequestNoted):
                self._waiting[event.originator_id] = None
            elif isinstance(event, Plan.ClarificationNoted):  # type: ignore[attr-defined]
                self._waiting.pop(event.originator_id, None)
