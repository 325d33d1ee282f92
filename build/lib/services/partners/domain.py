"""Partner organisations, what each is sent, and how its webhook deliveries fare. No I/O.

A partner organisation (youth care, a municipality, the police, a school) is registered by an
operator under an id (``jeugdzorg-utrecht``) and a name. The family may consent to share a
distributed plan with it (plans checks the id against this registry's copy); then the
organisation is sent a thin *notification* of each version shared with it, and, when the family
withdraws that consent or the case is erased, a revocation: nothing more of the case after that.

A notification goes out on the organisation's own NATS feed and, where it registered a webhook,
to that endpoint (Standard Webhooks: signed, retried with back-off for up to three days, the
same id every time). Each webhook attempt is an event of the notification, so its status
(pending, sent, failed, attempts, last error) is the record, and an attempt is recorded once
however many workers race (the second save conflicts on the aggregate's version).

Three aggregates: the ``Registry`` (one, under the service's key: organisations are not people),
a ``SharedCase`` per case (which organisations the case went to, under the case's key: shredded
when the case is erased), and a ``Notification`` per organisation and event, kept after an
erasure: it holds no personal data (ids, dates, links), and the revocation it records is the
proof that every partner was told.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from shared.errors import DomainRuleError, InvalidFieldError, NotFoundError
from shared.subjects import is_organisation_id

NOTIFICATIONS = UUID("2a0b8f6e-4c1d-5e3f-9a7b-6d5c4e3f2a1b")


class PartnerNotFoundError(NotFoundError):
    def __init__(self, organisation: str) -> None:
        super().__init__(f"no partner {organisation!r}")


class NotificationNotFoundError(NotFoundError):
    def __init__(self, event_id: UUID) -> None:
        super().__init__(f"no notification {event_id}")


class Kind(StrEnum):
    """What a notification tells (``shared.partner_feed``'s event names)."""

    PLAN_SHARED = "plan-shared"
    PLAN_REVOKED = "plan-revoked"


class WebhookStatus(StrEnum):
    NONE = "none"  # the organisation had no webhook when it was issued
    PENDING = "pending"  # to be sent, or sent again after a failed attempt
    SENT = "sent"  # the endpoint answered 2xx
    FAILED = "failed"  # gave up: three days of failures, or the endpoint answered 410
    CANCELLED = "cancelled"  # consent withdrawn or case erased before it was sent


# -- the registry ------------------------------------------------------------------------------
@dataclass
class SigningSecret:
    secret: str
    #: After a rotation the old secret signs too, until then (None: the current one).
    until: datetime | None = None


@dataclass
class Webhook:
    url: str
    secrets: list[SigningSecret]
    #: Why it is not sent to (an endpoint that answered 410 Gone), or None.
    disabled: str | None = None

    def signing_secrets(self, now: datetime) -> list[str]:
        return [s.secret for s in self.secrets if s.until is None or s.until > now]


@dataclass
class Partner:
    organisation: str
    name: str
    registered_at: datetime
    revoked_at: datetime | None = None
    webhook: Webhook | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def sends_webhooks(self) -> bool:
        return self.active and self.webhook is not None and self.webhook.disabled is None


class Registry(Aggregate):
    """Every partner organisation, present and past."""

    @event("Opened")
    def __init__(self, id: UUID) -> None:
        self.partners: dict[str, Partner] = {}

    def register(
        self,
        *,
        organisation: str,
        name: str,
        webhook_url: str | None,
        secret: str | None,
        at: datetime,
        actor: dict[str, str],
    ) -> None:
        """A new partner (or one revoked before, registered again)."""
        if not is_organisation_id(organisation):
            raise InvalidFieldError(
                ("organisation",),
                "an organisation id is lower-case letters, digits and hyphens (at most 63),"
                " e.g. jeugdzorg-utrecht",
            )
        known = self.partners.get(organisation)
        if known is not None and known.active:
            raise DomainRuleError(f"{organisation!r} is a partner already")
        if webhook_url is not None and secret is None:
            raise ValueError("a webhook needs its signing secret")
        self._registered(
            organisation=organisation,
            name=name,
            webhook_url=webhook_url,
            secret=secret,
            at=at,
            actor=actor,
        )

    @event("Registered")
    def _registered(
        self,
        *,
        organisation: str,
        name: str,
        webhook_url: str | None,
        secret: str | None,
        at: datetime,
        actor: dict[str, str],
    ) -> None:
        webhook = None
        if webhook_url is not None and secret is not None:
            webhook = Webhook(webhook_url, [SigningSecret(secret)])
        self.partners[organisation] = Partner(organisation, name, at, webhook=webhook)

    def set_webhook(
        self, *, organisation: str, url: str, secret: str, at: datetime, actor: dict[str, str]
    ) -> None:
        """A webhook (again, or elsewhere): sent to from now on, with a new secret."""
        self.active_partner(organisation)
        self._webhook_set(organisation=organisation, url=url, secret=secret, at=at, actor=actor)

    @event("WebhookSet")
    def _webhook_set(
        self, *, organisation: str, url: str, secret: str, at: datetime, actor: dict[str, str]
    ) -> None:
        self.partners[organisation].webhook = Webhook(url, [SigningSecret(secret)])

    def remove_webhook(self, *, organisation: str, at: datetime, actor: dict[str, str]) -> None:
        if self.active_partner(organisation).webhook is None:
            raise DomainRuleError(f"{organisation!r} has no webhook")
        self._webhook_removed(organisation=organisation, at=at, actor=actor)

    @event("WebhookRemoved")
    def _webhook_removed(self, *, organisation: str, at: datetime, actor: dict[str, str]) -> None:
        self.partners[organisation].webhook = None

    def rotate_secret(
        self,
        *,
        organisation: str,
        secret: str,
        overlap: timedelta,
        at: datetime,
        actor: dict[str, str],
    ) -> None:
        """A new signing secret; the old one signs as well for ``overlap`` (each webhook then
        carries two signatures), so the partner can switch without missing one."""
        if self.active_partner(organisation).webhook is None:
            raise DomainRuleError(f"{organisation!r} has no webhook to sign for")
        self._secret_rotated(
            organisation=organisation, secret=secret, old_until=at + overlap, at=at, actor=actor
        )

    @event("SecretRotated")
    def _secret_rotated(
        self,
        *,
        organisation: str,
        secret: str,
        old_until: datetime,
        at: datetime,
        actor: dict[str, str],
    ) -> None:
        webhook = self.partners[organisation].webhook
        assert webhook is not None
        kept = [s for s in webhook.secrets if s.until is None or s.until > at]
        for old in kept:
            if old.until is None:
                old.until = old_until
        webhook.secrets = [SigningSecret(secret), *kept]

    def disable_webhook(self, *, organisation: str, reason: str, at: datetime) -> bool:
        """The endpoint said it is gone (410): not sent to until an operator sets it again.
        False if it was disabled already (or is not there)."""
        partner = self.partners.get(organisation)
        if partner is None or partner.webhook is None or partner.webhook.disabled is not None:
            return False
        self._webhook_disabled(organisation=organisation, reason=reason, at=at)
        return True

    @event("WebhookDisabled")
    def _webhook_disabled(self, *, organisation: str, reason: str, at: datetime) -> None:
        webhook = self.partners[organisation].webhook
        assert webhook is not None
        webhook.disabled = reason

    def revoke(self, *, organisation: str, at: datetime, actor: dict[str, str]) -> None:
        self.active_partner(organisation)
        self._revoked(organisation=organisation, at=at, actor=actor)

    @event("Revoked")
    def _revoked(self, *, organisation: str, at: datetime, actor: dict[str, str]) -> None:
        self.partners[organisation].revoked_at = at

    def partner(self, organisation: str) -> Partner:
        found = self.partners.get(organisation)
        if found is None:
            raise PartnerNotFoundError(organisation)
        return found

    def active_partner(self, organisation: str) -> Partner:
        found = self.partner(organisation)
        if not found.active:
            raise DomainRuleError(f"{organisation!r} is no longer a partner (revoked)")
        return found

    def is_active(self, organisation: str) -> bool:
        found = self.partners.get(organisation)
        return found is not None and found.active


# -- a case, as the partners service knows it --------------------------------------------------
@dataclass
class Sharing:
    """What one organisation was sent of a case."""

    versions: list[int] = field(default_factory=list)
    notifications: list[UUID] = field(default_factory=list)
    #: Revoked (consent withdrawn): nothing more of the case goes to it, unless shared again.
    revoked: bool = False


class SharedCase(Aggregate):
    """Which organisations a case's plan went to. Its id is the case's."""

    @event("Opened")
    def __init__(self, id: UUID, *, model: str) -> None:
        self.model = model
        self.organisations: dict[str, Sharing] = {}

    @event("Shared")
    def note_shared(self, *, organisation: str, version: int, notification: UUID) -> None:
        sharing = self.organisations.setdefault(organisation, Sharing())
        sharing.versions.append(version)
        sharing.notifications.append(notification)
        sharing.revoked = False

    def withdraw(self, organisation: str, notification: UUID) -> bool:
        """The family withdrew consent for ``organisation``: True if it had been sent anything
        (it is then told so)."""
        sharing = self.organisations.get(organisation)
        if sharing is None or sharing.revoked:
            return False
        self._withdrawn(organisation=organisation, notification=notification)
        return True

    @event("Withdrawn")
    def _withdrawn(self, *, organisation: str, notification: UUID) -> None:
        sharing = self.organisations[organisation]
        sharing.revoked = True
        sharing.notifications.append(notification)

    def still_shared(self) -> list[str]:
        """The organisations the case is shared with now: told when it is erased."""
        return [o for o, s in self.organisations.items() if not s.revoked]

    def notifications(self, organisation: str | None = None) -> list[UUID]:
        return [
            n
            for o, s in self.organisations.items()
            if organisation is None or o == organisation
            for n in s.notifications
        ]


# -- one thing sent to one organisation --------------------------------------------------------
def notification_id(organisation: str, upstream: str, kind: Kind) -> UUID:
    """The id of what ``organisation`` is sent because of the upstream event ``upstream``
    (``<origin>:<position>``): the same every time it is worked out, and the CloudEvent's and the
    webhook's id, on every retry."""
    return uuid5(NOTIFICATIONS, f"{organisation}|{upstream}|{kind.value}")


@dataclass
class Attempt:
    number: int
    at: datetime
    #: The HTTP status the endpoint answered, or None (no answer: refused, timed out, ...).
    status_code: int | None
    error: str | None


class Notification(Aggregate):
    """One partner event for one organisation, and its webhook deliveries."""

    @event("Issued")
    def __init__(
        self,
        id: UUID,
        *,
        organisation: str,
        case_id: UUID,
        kind: str,
        data: dict[str, Any],
        issued_at: datetime,
        webhook: bool,
    ) -> None:
        self.organisation = organisation
        self.case_id = case_id
        self.kind = Kind(kind)
        #: The partner event's data, as sent (``shared.partner_feed``).
        self.data = data
        self.issued_at = issued_at
        self.webhook_status = WebhookStatus.PENDING if webhook else WebhookStatus.NONE
        self.attempts: list[Attempt] = []
        #: Attempts of the current series (a resend starts a new one).
        self.series_start = 0
        self.next_attempt_at: datetime | None = issued_at if webhook else None
        self.sent_at: datetime | None = None
        self.detail: str | None = None

    @property
    def series(self) -> list[Attempt]:
        return self.attempts[self.series_start :]

    @property
    def last_error(self) -> str | None:
        return self.attempts[-1].error if self.attempts else None

    def record_attempt(
        self,
        *,
        number: int,
        at: datetime,
        status_code: int | None,
        error: str | None,
        retry_at: datetime | None,
        give_up: str | None,
    ) -> bool:
        """One webhook attempt's outcome: sent (2xx), to be retried at ``retry_at``, or given up
        with the reason ``give_up``. False if that attempt was recorded already (a second worker,
        or a retry of the record), or the notification is no longer pending."""
        if self.webhook_status is not WebhookStatus.PENDING or number != len(self.attempts) + 1:
            return False
        self._attempted(
            number=number,
            at=at,
            status_code=status_code,
            error=error,
            retry_at=retry_at,
            give_up=give_up,
        )
        return True

    @event("Attempted")
    def _attempted(
        self,
        *,
        number: int,
        at: datetime,
        status_code: int | None,
        error: str | None,
        retry_at: datetime | None,
        give_up: str | None,
    ) -> None:
        self.attempts.append(Attempt(number, at, status_code, error))
        if error is None:
            self.webhook_status, self.sent_at, self.next_attempt_at = WebhookStatus.SENT, at, None
        elif give_up is not None:
            self.webhook_status, self.next_attempt_at = WebhookStatus.FAILED, None
            self.detail = give_up
        else:
            self.next_attempt_at = retry_at

    def cancel(self, *, reason: str, at: datetime) -> bool:
        """Not to be sent any more (consent withdrawn, case erased); False if it was not
        pending."""
        if self.webhook_status is not WebhookStatus.PENDING:
            return False
        self._cancelled(reason=reason, at=at)
        return True

    @event("Cancelled")
    def _cancelled(self, *, reason: str, at: datetime) -> None:
        self.webhook_status, self.next_attempt_at, self.detail = (
            WebhookStatus.CANCELLED,
            None,
            reason,
        )

    def resend(self, *, at: datetime, actor: dict[str, str]) -> None:
        """Send it again by hand (or in a replay): the same id, a new series of attempts."""
        if self.webhook_status is WebhookStatus.CANCELLED:
            raise DomainRuleError(f"notification {self.id} was cancelled ({self.detail})")
        if self.webhook_status is WebhookStatus.PENDING:
            raise DomainRuleError(f"notification {self.id} is being sent already")
        self._resent(at=at, actor=actor)

    @event("Resent")
    def _resent(self, *, at: datetime, actor: dict[str, str]) -> None:
        self.webhook_status, self.next_attempt_at, self.detail = WebhookStatus.PENDING, at, None
        self.series_start = len(self.attempts)


# -- when to try again -------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with jitter: the n-th retry waits ``first * 2**(n-1)`` (at most
    ``longest``), of which a random half, so that many failing deliveries do not come back in
    step; given up once the next try would fall later than ``give_up_after`` from the first.
    With the defaults (10 s, 6 h, 3 days) that is some twenty-five tries over the three days."""

    first: timedelta = timedelta(seconds=10)
    longest: timedelta = timedelta(hours=6)
    give_up_after: timedelta = timedelta(days=3)

    def delay(self, failures: int, jitter: float) -> timedelta:
        """The pause after the ``failures``-th failure in a row; ``jitter`` in [0, 1)."""
        full: timedelta = min(self.first * 2 ** (failures - 1), self.longest)
        return full / 2 + full / 2 * jitter

    def next_try(
        self,
        *,
        first_attempt: datetime,
        now: datetime,
        failures: int,
        jitter: float,
        at_least: timedelta = timedelta(0),
    ) -> datetime | None:
        """When to try again, or None: give up. ``at_least`` is what the endpoint asked for
        (``Retry-After``)."""
        wait = max(self.delay(failures, jitter), at_least)
        retry_at = now + wait
        if retry_at - first_attempt > self.give_up_after:
            return None
        return retry_at
