"""Webhooks for partners without NATS: Standard Webhooks, at least once, in order per case.

Each notification pending for an organisation's endpoint is POSTed as the partner event itself
(a CloudEvent, the same bytes as on NATS), signed with the ``standardwebhooks`` library:
``webhook-id`` (the event's id, the same on every retry: de-duplicate by it),
``webhook-timestamp`` (this attempt's), ``webhook-signature`` (``v1,<base64>``; after a secret's
rotation two, space-separated, until the old one expires).

- 2xx: sent. 410 Gone: the endpoint is disabled (nothing more is sent to it until an operator
  sets it again) and this notification failed. 429 and 5xx: tried again later, waiting at least
  what ``Retry-After`` asks, and the whole destination slows down (nothing else is sent to it
  until then). Anything else, or no answer: tried again.
- Back-off: exponential with jitter (``RetryPolicy``), given up after three days: failed, with
  the last error.
- Order per case: of one organisation's notifications of one case only the oldest pending one is
  sent; the next waits until it was sent or given up.
- Every attempt is an event of the notification, recorded once (``Notification.record_attempt``),
  so the status survives restarts and two workers never both record one; a crash between an
  endpoint's 2xx and the record sends it again, with the same id.

The worker is the service's one background job for webhooks, run like the other services'
timers: a deployment runs it in one replica at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from standardwebhooks.webhooks import Webhook as Signer

from services.partners.app import PartnersApplication
from services.partners.domain import RetryPolicy
from services.partners.feed import partner_payload
from services.partners.ssrf import TargetRefusedError, TargetRules, check_url, guarded_client
from services.partners.views import DeliveryRow
from shared import fence
from shared.clock import Clock, SystemClock
from shared.logging import get_logger
from shared.partner_feed import CLOUDEVENTS_JSON
from shared.store import STORE_UNAVAILABLE

log = get_logger(__name__)

GONE = "the endpoint answered 410 Gone: its webhook is disabled"


def signature(secrets: list[str], msg_id: str, timestamp: datetime, body: str) -> str:
    """``webhook-signature``: one ``v1,…`` per secret that signs now, space-separated."""
    return " ".join(Signer(secret).sign(msg_id, timestamp, body) for secret in secrets)


def webhook_headers(
    secrets: list[str], msg_id: str, timestamp: datetime, body: bytes
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature(secrets, msg_id, timestamp, body.decode()),
        "content-type": CLOUDEVENTS_JSON,
        "user-agent": "Kring-Webhooks/1",
    }


def retry_after(response: httpx.Response, now: datetime) -> timedelta:
    """What ``Retry-After`` asks (seconds or an HTTP date); zero when absent or unreadable."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return timedelta(0)
    if value.isdigit():
        return timedelta(seconds=min(int(value), 86_400))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return timedelta(0)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when - now, timedelta(0))


class WebhookWorker:
    def __init__(
        self,
        app: PartnersApplication,
        *,
        source: str,
        rules: TargetRules,
        policy: RetryPolicy,
        timeout_seconds: float = 10.0,
        tick_seconds: float = 1.0,
        concurrency: int = 8,
        clock: Clock | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.app = app
        self.source = source
        self.rules = rules
        self.policy = policy
        self.timeout_seconds = timeout_seconds
        self.tick_seconds = tick_seconds
        self.clock = clock or SystemClock()
        self.jitter = jitter
        self._limit = asyncio.Semaphore(concurrency)
        #: A destination that answered 429 or 5xx: nothing goes to it before then.
        self._slowed: dict[str, datetime] = {}
        self._client: httpx.AsyncClient | None = None

    async def deliver_webhooks(self) -> None:
        """The service's background job: a round every tick, forever."""
        try:
            while True:
                # Nothing tried: the next round will (or, the term over, the next holder).
                with contextlib.suppress(*STORE_UNAVAILABLE, fence.LeaseLostError):
                    await self.deliver_due()
                await asyncio.sleep(self.tick_seconds)
        finally:
            await self.close()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def deliver_due(self) -> int:
        """One round: every delivery due now, at most one per organisation and case. Returns
        how many attempts were recorded."""
        now = self.clock.now()
        registry = await asyncio.to_thread(self.app.registry)

        def sending(organisation: str) -> bool:
            partner = registry.partners.get(organisation)
            slowed = self._slowed.get(organisation)
            return (
                partner is not None and partner.sends_webhooks and (slowed is None or slowed <= now)
            )

        due = await asyncio.to_thread(self.app.views.due, now, sending)
        results = await asyncio.gather(*(self._attempt(row) for row in due))
        return sum(results)

    async def _attempt(self, row: DeliveryRow) -> bool:
        async with self._limit:
            try:
                return await self._send(row)
            except STORE_UNAVAILABLE:
                raise
            except fence.LeaseLostError:
                raise
            except Exception as error:  # one delivery's fault holds up no other
                log.error(
                    "partner.webhook_error",
                    organisation=row.organisation,
                    event_id=str(row.event_id),
                    error=type(error).__name__,
                )
                return False

    async def _send(self, row: DeliveryRow) -> bool:
        registry = await asyncio.to_thread(self.app.registry)
        partner = registry.partners.get(row.organisation)
        if partner is None or partner.webhook is None:
            return False
        now = self.clock.now()
        body = partner_payload(
            event_id=row.event_id,
            kind=row.kind.value,
            data=row.data,
            issued_at=row.issued_at,
            position=row.position,
            source=self.source,
        )
        secrets = partner.webhook.signing_secrets(now)
        headers = webhook_headers(secrets, str(row.event_id), now, body)
        status_code: int | None = None
        asked = timedelta(0)
        try:
            check_url(partner.webhook.url, self.rules)
            if not fence.still_held():  # a replica paused past its lease sends nothing on waking
                raise fence.LeaseLostError("partners: the lease ran out before sending")
            response = await self._http().post(partner.webhook.url, content=body, headers=headers)
            status_code = response.status_code
            asked = retry_after(response, now)
        except TargetRefusedError as refused:
            error: str | None = f"refused: {refused}"
        except httpx.TimeoutException:
            error = "timed out"
        except httpx.HTTPError as failure:
            error = f"no answer: {type(failure).__name__}"
        else:
            error = None if 200 <= status_code < 300 else f"answered {status_code}"
        number = len(row.history) + 1
        retry_at: datetime | None = None
        give_up: str | None = None
        if error is not None:
            if status_code == 410:
                give_up = GONE
                await asyncio.to_thread(self.app.disable_webhook, row.organisation, GONE)
            else:
                retry_at = self.policy.next_try(
                    first_attempt=row.series_started_at or now,
                    now=now,
                    failures=row.series_attempts + 1,
                    jitter=self.jitter(),
                    at_least=asked,
                )
                if retry_at is None:
                    give_up = f"gave up after {row.series_attempts + 1} attempts: {error}"
                if status_code is not None and (status_code == 429 or status_code >= 500):
                    self._slowed[row.organisation] = retry_at or now + self.policy.longest
        else:
            self._slowed.pop(row.organisation, None)
        recorded = await asyncio.to_thread(
            self.app.record_attempt,
            row.event_id,
            number=number,
            at=now,
            status_code=status_code,
            error=error,
            retry_at=retry_at,
            give_up=give_up,
        )
        log.info(
            "partner.webhook_attempt",
            organisation=row.organisation,
            event_id=str(row.event_id),
            attempt=number,
            status_code=status_code,
            error=error,
            retry_at=retry_at.isoformat() if retry_at else None,
            gave_up=give_up is not None,
        )
        return recorded

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = guarded_client(self.rules, self.timeout_seconds)
        return self._client
