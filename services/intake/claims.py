"""Intake answers claim checks (``shared.claims``): plans asks, over core NATS with its own
identity, for the conference questions and minimum requirements of an accepted case, which it
prints on the plan's copies. The text never goes on the stream; the server lets only plans ask
here, and only intake answer. The replica holding intake's lease answers, on its term's
connection (``shared.bus``), as it runs the consumers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from faststream.nats import NatsBroker

from services.intake.app import IntakeApplication
from shared.bus import Bus
from shared.claims import (
    CLARIFICATION_SUBJECT,
    ClaimOutcome,
    ClarificationAnswer,
    ClarificationClaim,
)
from shared.fence import Term
from shared.logging import get_logger
from shared.permissions import SERVICE_CLAIMS

log = get_logger(__name__)

#: Who may ask (the NATS permissions enforce it: nobody else can publish on the subject).
ASKED_BY = next(
    asker for asker, asked in SERVICE_CLAIMS.items() if ("intake", "clarification") in asked
)


def answer_clarifications(app: IntakeApplication) -> Callable[[Bus], None]:
    def attach(bus: Bus) -> None:
        bus.register(register)

    def register(broker: NatsBroker, term: Term | None) -> None:
        subscriber = broker.subscriber(
            CLARIFICATION_SUBJECT,
            queue="intake-claims",  # one answer per request, even while terms hand over
            title="intake:clarification",
            description="a claim check: the questions and minimum requirements of an accepted"
            " case, for plans (core NATS, never on a stream)",
        )

        @subscriber
        async def answer(claim: ClarificationClaim) -> ClarificationAnswer:
            try:
                found = await asyncio.to_thread(app.clarification_for_plan, claim.case_id, ASKED_BY)
            except Exception as error:  # answered, never silent: plans asks again later
                log.error("claim.failed", case_id=str(claim.case_id), error=type(error).__name__)
                return ClarificationAnswer(outcome=ClaimOutcome.FAILED)
            log.info("claim.answered", case_id=str(claim.case_id), outcome=found.outcome.value)
            return found

    return attach
