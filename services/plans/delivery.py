"""The delivery worker: e-mails the copies a distribution left pending, outside the command that
stored the distribution, and records each outcome as an event of the plan.

Each copy (version, participant) is sent until it has a record, then never again. A crash after
the SMTP server accepted a copy and before its record was stored sends that copy twice on the
next round: e-mail has no exactly-once, and twice beats never.

It runs in the replica that holds plans' lease only (``shared.lease``). Right before each copy
is handed to the SMTP server it asks whether the term still lasts (``shared.fence``): a replica
that was paused past its lease sends nothing when it wakes, and its record would be refused.
That leaves the instant between the question and the server's answer, which is the crash case
above: a copy twice at most.

Every failure to send a copy is an attempt, whatever raised it (an SMTP refusal, a lost
connection, an address smtplib cannot encode, a document that would not render): after
``max_attempts`` (at once for a permanent refusal) the copy is recorded failed, with a reason
that names the failure and never the address. A store that cannot be reached is no attempt:
nothing was tried. Attempts are counted in memory, so a restart gives a copy its tries again.
"""

from __future__ import annotations

import asyncio

from services.plans.app import PendingEmail, PlansApplication
from services.plans.document import LABELS, document_of, render_pdf
from services.plans.domain import DeliveryStatus
from services.plans.mail import DeliveryError, Mailer, OutgoingMail
from shared import fence
from shared.errors import CaseNotFoundError
from shared.logging import get_logger
from shared.store import STORE_UNAVAILABLE

log = get_logger(__name__)

NO_SMTP = "no SMTP configured"
#: Nothing was tried: the store is away, or this replica's lease ran out.
NOT_TRIED: tuple[type[BaseException], ...] = (*STORE_UNAVAILABLE, fence.LeaseLostError)
NO_ADDRESS = "no e-mail address recorded"


class DeliveryWorker:
    def __init__(
        self,
        app: PlansApplication,
        mailer: Mailer | None,
        *,
        tick_seconds: float = 1.0,
        max_attempts: int = 5,
    ) -> None:
        self.app = app
        self.mailer = mailer
        self.tick_seconds = tick_seconds
        self.max_attempts = max_attempts
        self._attempts: dict[PendingEmail, int] = {}

    async def deliver_plans(self) -> None:
        """The service's background job: a round of deliveries every tick, forever."""
        while True:
            await self.deliver_pending()
            await asyncio.sleep(self.tick_seconds)

    async def deliver_pending(self) -> int:
        """One round: every pending e-mail copy once. Returns how many got a record."""
        recorded = 0
        for pending in await asyncio.to_thread(self.app.pending_emails):
            try:
                if await self._deliver(pending):
                    recorded += 1
            except fence.LeaseLostError:
                return recorded  # another replica delivers from here
            except Exception as error:  # one copy's fault must not hold up the others
                log.error(
                    "plan.delivery_error",
                    case_id=str(pending.case_id),
                    version=pending.version,
                    error=type(error).__name__,
                )
        return recorded

    async def _deliver(self, pending: PendingEmail) -> bool:
        if self.mailer is None:
            return await self._record(pending, DeliveryStatus.NOT_SENT, NO_SMTP)
        mailer = self.mailer
        try:
            mail = await asyncio.to_thread(self._compose, pending)
            if mail is not None:
                if not fence.still_held():
                    raise fence.LeaseLostError("plans: the lease ran out before sending")
                await asyncio.to_thread(mailer.send, mail)
        except CaseNotFoundError:  # erased meanwhile: nothing to send, nothing to record
            self._attempts.pop(pending, None)
            return False
        except NOT_TRIED:
            raise
        except DeliveryError as error:
            return await self._failed(pending, error.reason, permanent=error.permanent)
        except Exception as error:  # any other failure to send is an attempt all the same
            return await self._failed(pending, f"error: {type(error).__name__}", permanent=False)
        if mail is None:
            return await self._record(pending, DeliveryStatus.NOT_SENT, NO_ADDRESS)
        return await self._record(pending, DeliveryStatus.SENT, None)

    async def _failed(self, pending: PendingEmail, reason: str, *, permanent: bool) -> bool:
        attempts = self._attempts.get(pending, 0) + 1
        self._attempts[pending] = attempts
        log.warning(
            "plan.email_failed",
            case_id=str(pending.case_id),
            version=pending.version,
            participant_id=pending.participant_id,
            reason=reason,
            attempt=attempts,
        )
        if permanent or attempts >= self.max_attempts:
            return await self._record(pending, DeliveryStatus.FAILED, reason)
        return False

    def _compose(self, pending: PendingEmail) -> OutgoingMail | None:
        plan = self.app.get(pending.case_id)
        address = plan.directory.get(pending.participant_id, {}).get("email")
        if not address:
            return None
        # Rendered now, so a name withdrawn since the distribution is not printed.
        document = document_of(plan, pending.version)
        labels = LABELS[document.language]
        return OutgoingMail(
            to=address,
            subject=labels["mail_subject"].format(version=pending.version),
            text=labels["mail_text"].format(version=pending.version),
            attachment=render_pdf(document),
            filename=f"plan-v{pending.version}.pdf",
        )

    async def _record(
        self, pending: PendingEmail, status: DeliveryStatus, detail: str | None
    ) -> bool:
        recorded = await asyncio.to_thread(self.app.record_email_outcome, pending, status, detail)
        self._attempts.pop(pending, None)
        if recorded:
            log.info(
                "plan.copy_recorded",
                case_id=str(pending.case_id),
                version=pending.version,
                participant_id=pending.participant_id,
                status=status.value,
            )
        return recorded
