"""The partners service's application: the registry's commands (an operator's), the policies
that turn plans' sharing and intake's erasure into notifications, and the webhook worker's
records. Load, call, save; the rules are the domain's."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import IntegrityError

from services.partners.access import RULES
from services.partners.domain import (
    Kind,
    Notification,
    NotificationNotFoundError,
    Partner,
    Registry,
    SharedCase,
    WebhookStatus,
    notification_id,
)
from services.partners.views import PartnersViews
from shared.access import Facts
from shared.actor import system_actor
from shared.application import KringApplication
from shared.clock import Clock, SystemClock
from shared.envelope import Delivered, message_id
from shared.errors import CaseNotFoundError, DomainRuleError
from shared.events import PARTNER_REGISTRY_ID, CaseErased, PlanShared, PlanSharingWithdrawn
from shared.identity import Principal
from shared.logging import get_logger
from shared.partner_feed import (
    CopyLinks,
    PartnerPlanRevoked,
    PartnerPlanShared,
    RevocationReason,
)

log = get_logger(__name__)

#: Recording a webhook attempt retries this often when a command saved the notification at the
#: same moment (a resend): the request is out already.
RECORD_TRIES = 5


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class PartnersApplication(KringApplication):
    name = "partners"
    policies = {
        PlanShared: "on_plan_shared",
        PlanSharingWithdrawn: "on_sharing_withdrawn",
        CaseErased: "on_case_erased",
    }
    shared_aggregate_ids = frozenset({PARTNER_REGISTRY_ID})

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        clock: Clock | None = None,
        plans_url: str = "http://127.0.0.1:8003",
        rotation_overlap: timedelta = timedelta(days=1),
    ) -> None:
        super().__init__(env)
        self.clock = clock or SystemClock()
        self.plans_url = plans_url.rstrip("/")
        self.rotation_overlap = rotation_overlap
        self.system = system_actor(self.name).as_record()
        self.views = PartnersViews(self)

    # -- the registry (an operator's) ---------------------------------------------------------
    def registry(self) -> Registry:
        try:
            registry: Registry = self.repository.get(PARTNER_REGISTRY_ID)
        except AggregateNotFoundError:
            registry = Registry(id=PARTNER_REGISTRY_ID)
        return registry

    def register(
        self, organisation: str, name: str, webhook_url: str | None, principal: Principal
    ) -> tuple[Partner, str | None]:
        """A new partner; returns it and its webhook's signing secret (shown once)."""
        actor = RULES["register"].permit(principal)
        registry = self.registry()
        secret = new_secret() if webhook_url else None
        registry.register(
            organisation=organisation,
            name=name,
            webhook_url=webhook_url,
            secret=secret,
            at=self.clock.now(),
            actor=actor.as_record(),
        )
        self.save(registry)
        log.info("partner.registered", organisation=organisation, webhook=webhook_url is not None)
        return registry.partner(organisation), secret

    def set_webhook(self, organisation: str, url: str, principal: Principal) -> tuple[Partner, str]:
        actor = RULES["webhook"].permit(principal)
        registry = self.registry()
        secret = new_secret()
        registry.set_webhook(
            organisation=organisation,
            url=url,
            secret=secret,
            at=self.clock.now(),
            actor=actor.as_record(),
        )
        self.save(registry)
        return registry.partner(organisation), secret

    def remove_webhook(self, organisation: str, principal: Principal) -> Partner:
        actor = RULES["webhook"].permit(principal)
        registry = self.registry()
        registry.remove_webhook(
            organisation=organisation, at=self.clock.now(), actor=actor.as_record()
        )
        self.save(registry)
        return registry.partner(organisation)

    def rotate_secret(self, organisation: str, principal: Principal) -> tuple[Partner, str]:
        actor = RULES["rotate"].permit(principal)
        registry = self.registry()
        secret = new_secret()
        registry.rotate_secret(
            organisation=organisation,
            secret=secret,
            overlap=self.rotation_overlap,
            at=self.clock.now(),
            actor=actor.as_record(),
        )
        self.save(registry)
        return registry.partner(organisation), secret

    def revoke(self, organisation: str, principal: Principal) -> Partner:
        actor = RULES["revoke"].permit(principal)
        registry = self.registry()
        registry.revoke(organisation=organisation, at=self.clock.now(), actor=actor.as_record())
        self.save(registry)
        log.info("partner.revoked", organisation=organisation)
        return registry.partner(organisation)

    def partner(self, organisation: str, principal: Principal) -> Partner:
        RULES["read"].permit(principal, Facts(organisations=(organisation,)))
        return self.registry().partner(organisation)

    def partners(self, principal: Principal) -> list[Partner]:
        RULES["list"].permit(principal)
        return sorted(self.registry().partners.values(), key=lambda p: p.organisation)

    # -- policies: what plans shares, what intake erases ---------------------------------------
    def on_plan_shared(
        self, event: PlanShared, processing: ProcessingEvent[UUID], delivered: Delivered
    ) -> None:
        registry = self.registry()
        case = self._case(event.case_id, event.model.value)
        upstream = message_id(delivered.origin, delivered.position)
        for shared in event.organisations:
            organisation = shared.organisation
            if not registry.is_active(organisation):
                # Plans checked it at distribution; revoked since: nothing goes to it.
                log.warning("partner.share_skipped", organisation=organisation)
                continue
            identity = notification_id(organisation, upstream, Kind.PLAN_SHARED)
            data = PartnerPlanShared(
                case_id=event.case_id,
                plan_version=event.plan_version,
                shared_at=event.shared_at,
                agreements=shared.agreements,
                next_meeting_on=event.next_meeting_on,
                copy_links=self._copy_links(event.case_id, event.plan_version),
            )
            case.note_shared(
                organisation=organisation, version=event.plan_version, notification=identity
            )
            processing.collect_events(
                self._notification(identity, organisation, event.case_id, Kind.PLAN_SHARED, data),
            )
        if case.organisations:  # nothing is kept of a case shared with no partner of ours
            processing.collect_events(case)

    def on_sharing_withdrawn(
        self, event: PlanSharingWithdrawn, processing: ProcessingEvent[UUID], delivered: Delivered
    ) -> None:
        try:
            case: SharedCase = self.repository.get(event.case_id)
        except AggregateNotFoundError:
            return  # nothing was ever sent of it
        organisation = event.organisation
        upstream = message_id(delivered.origin, delivered.position)
        identity = notification_id(organisation, upstream, Kind.PLAN_REVOKED)
        cancelled = self._cancel(case.notifications(organisation), "consent withdrawn")
        if not case.withdraw(organisation, identity):
            return
        revocation = PartnerPlanRevoked(
            case_id=event.case_id,
            reason=RevocationReason.CONSENT_WITHDRAWN,
            revoked_at=event.withdrawn_at,
        )
        notification = self._notification(
            identity, organisation, event.case_id, Kind.PLAN_REVOKED, revocation
        )
        processing.collect_events(case, *cancelled, notification)

    def before_erasure(self, case_id: UUID, actor: dict[str, str]) -> list[Any]:
        """Read while the case still can be: every organisation it is still shared with is told
        it is erased; whatever was still to be sent of it is not."""
        try:
            case: SharedCase = self.repository.get(case_id)
        except AggregateNotFoundError:
            return []
        registry = self.registry()
        at = self.clock.now()
        changed: list[Any] = self._cancel(case.notifications(), "case erased")
        for organisation in case.still_shared():
            if not registry.is_active(organisation):
                continue
            identity = notification_id(organisation, f"erasure:{case_id}", Kind.PLAN_REVOKED)
            revocation = PartnerPlanRevoked(
                case_id=case_id, reason=RevocationReason.CASE_ERASED, revoked_at=at
            )
            changed.append(
                self._notification(identity, organisation, case_id, Kind.PLAN_REVOKED, revocation)
            )
        return changed

    def _case(self, case_id: UUID, model: str) -> SharedCase:
        try:
            case: SharedCase = self.repository.get(case_id)
        except AggregateNotFoundError:
            case = SharedCase(id=case_id, model=model)
        return case

    def _notification(
        self,
        identity: UUID,
        organisation: str,
        case_id: UUID,
        kind: Kind,
        data: PartnerPlanShared | PartnerPlanRevoked,
    ) -> Notification:
        partner = self.registry().partners.get(organisation)
        return Notification(
            id=identity,
            organisation=organisation,
            case_id=case_id,
            kind=kind.value,
            data=data.model_dump(mode="json", by_alias=True),
            issued_at=self.clock.now(),
            # A disabled endpoint (it answered 410) holds it until it is set again.
            webhook=partner is not None and partner.active and partner.webhook is not None,
        )

    def _cancel(self, identities: list[UUID], reason: str) -> list[Notification]:
        cancelled = []
        for identity in identities:
            notification = self._get_notification(identity)
            if notification.cancel(reason=reason, at=self.clock.now()):
                cancelled.append(notification)
        return cancelled

    def _copy_links(self, case_id: UUID, version: int) -> CopyLinks:
        base = f"{self.plans_url}/cases/{case_id}/plan/copy"
        return CopyLinks.model_validate(
            {
                "json": f"{base}?version={version}",
                "pdf": f"{base}.pdf?version={version}",
                "html": f"{base}.html?version={version}",
            }
        )

    # -- the webhook worker's records ----------------------------------------------------------
    def record_attempt(
        self,
        identity: UUID,
        *,
        number: int,
        at: datetime,
        status_code: int | None,
        error: str | None,
        retry_at: datetime | None,
        give_up: str | None,
    ) -> bool:
        """One attempt's outcome (``at``: when it was made), once; False if it was recorded
        already (or is not wanted)."""
        for attempt in range(RECORD_TRIES):
            notification = self._get_notification(identity)
            recorded = notification.record_attempt(
                number=number,
                at=at,
                status_code=status_code,
                error=error,
                retry_at=retry_at,
                give_up=give_up,
            )
            if not recorded:
                return False
            try:
                self.save(notification)
                return True
            except IntegrityError:
                if attempt == RECORD_TRIES - 1:
                    raise
        return False  # pragma: no cover - the loop returns or raises

    def disable_webhook(self, organisation: str, reason: str) -> bool:
        registry = self.registry()
        if not registry.disable_webhook(
            organisation=organisation, reason=reason, at=self.clock.now()
        ):
            return False
        self.save(registry)
        log.warning("partner.webhook_disabled", organisation=organisation, reason=reason)
        return True

    # -- by hand: resend one, replay from a time -----------------------------------------------
    def resend(self, organisation: str, identity: UUID, principal: Principal) -> Notification:
        actor = RULES["resend"].permit(principal)
        notification = self._get_notification(identity)
        if notification.organisation != organisation:
            raise NotificationNotFoundError(identity)
        self._check_sends_webhooks(organisation)
        notification.resend(at=self.clock.now(), actor=actor.as_record())
        self.save(notification)
        return notification

    def replay(self, organisation: str, since: datetime, principal: Principal) -> list[UUID]:
        """Every notification of ``organisation`` issued at or after ``since`` goes to its
        webhook again (those still on their way are left to finish); returns their ids."""
        actor = RULES["replay"].permit(principal, Facts(organisations=(organisation,)))
        self._check_sends_webhooks(organisation)
        chosen = [
            row.event_id
            for row in self.views.of_partner(organisation)
            if row.issued_at >= since
            and row.webhook_status in (WebhookStatus.SENT, WebhookStatus.FAILED, WebhookStatus.NONE)
        ]
        replayed = []
        for identity in chosen:
            notification = self._get_notification(identity)
            if notification.webhook_status is WebhookStatus.PENDING:
                continue
            notification.resend(at=self.clock.now(), actor=actor.as_record())
            self.save(notification)
            replayed.append(identity)
        return replayed

    def _check_sends_webhooks(self, organisation: str) -> None:
        partner = self.registry().active_partner(organisation)
        if partner.webhook is None:
            raise DomainRuleError(f"{organisation!r} has no webhook: its feed is on NATS only")

    def _get_notification(self, identity: UUID) -> Notification:
        try:
            notification: Notification = self.repository.get(identity)
        except AggregateNotFoundError:
            raise NotificationNotFoundError(identity) from None
        return notification

    # -- reading -------------------------------------------------------------------------------
    def case_facts(self, case_id: UUID) -> Facts:
        try:
            self.repository.get(case_id)
        except AggregateNotFoundError:
            raise CaseNotFoundError(case_id) from None
        return Facts.of_case(case_id, None)
