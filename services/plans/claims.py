"""Plans asks intake for what the plan needs of the clarification: the conference questions
(the plan says which agreements answer which) and the minimum requirements (printed on every
copy; their sign-off belongs to the professional who set each). A claim check over core NATS
with plans' own identity (``shared.claims``): the text never goes on the stream, it is kept in
plans' store under the case's key, and erased with the case.

It asks for every plan whose accepted request it heard of and that lacks them (plans' read model,
``views.py``), each tick, until intake answers; a distribution waits for the answer
(``Plan.distribution_blockers``)."""

from __future__ import annotations

import asyncio
import contextlib
from uuid import UUID, uuid4

from services.plans.app import PlansApplication
from shared.bus import Bus
from shared.claims import (
    CLARIFICATION_SUBJECT,
    ClaimOutcome,
    ClarificationAnswer,
    ClarificationClaim,
)
from shared.logging import get_logger
from shared.permissions import claim_reply_prefix

log = get_logger(__name__)


class ClarificationFetcher:
    def __init__(
        self, app: PlansApplication, *, tick_seconds: float = 1.0, timeout_seconds: float = 2.0
    ) -> None:
        self.app = app
        self.tick_seconds = tick_seconds
        self.timeout_seconds = timeout_seconds
        self.bus: Bus | None = None
        #: Cases intake answered as erased: never asked again while their CaseErased is on its
        #: way here (the erasure takes them out of the read model).
        self._erased: set[UUID] = set()

    def attach(self, bus: Bus) -> None:
        self.bus = bus

    def waiting(self) -> list[UUID]:
        """The plans that heard of their accepted request and lack its clarification."""
        return [c for c in self.app.views.awaiting_clarification() if c not in self._erased]

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
                self._erased.add(case_id)
        return noted

    async def ask(self, case_id: UUID) -> ClarificationAnswer:
        """One request, its answer awaited under plans' claim-reply prefix, where intake may
        answer even after its connection reconnected (``shared.permissions``)."""
        assert self.bus is not None
        connection = self.bus.connection
        inbox = f"{claim_reply_prefix('plans')}.{uuid4().hex}"
        answers = await connection.subscribe(inbox, max_msgs=1)
        try:
            await connection.publish(
                CLARIFICATION_SUBJECT,
                ClarificationClaim(case_id=case_id).model_dump_json().encode(),
                reply=inbox,
            )
            reply = await answers.next_msg(timeout=self.timeout_seconds)
        finally:
            with contextlib.suppress(Exception):  # gone already once its one answer came
                await answers.unsubscribe()
        return ClarificationAnswer.model_validate_json(reply.data)
