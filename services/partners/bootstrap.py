"""The partners service's composition root: the one place the feed relay, the webhook worker
and its guarded HTTP client are wired."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from services.partners import api, bus
from services.partners.access import RULES
from services.partners.app import PartnersApplication
from services.partners.feed import FeedRelay
from services.partners.settings import PartnersSettings
from services.partners.ssrf import TargetRules
from services.partners.webhooks import WebhookWorker
from shared.bus import Bus
from shared.clock import Clock
from shared.runtime import ServiceDefinition
from shared.store import eventsourcing_env


def build(
    settings: PartnersSettings | None = None, clock: Clock | None = None
) -> ServiceDefinition:
    settings = settings or PartnersSettings()
    app = PartnersApplication(
        env=eventsourcing_env(settings),
        clock=clock,
        plans_url=str(settings.plans_public_url),
        rotation_overlap=timedelta(seconds=settings.webhook_rotation_overlap_seconds),
    )
    rules = TargetRules(
        allow_private=settings.webhook_allow_private, allow_http=settings.webhook_allow_http
    )
    worker = WebhookWorker(
        app,
        source=settings.partners_source,
        rules=rules,
        policy=settings.retry_policy(),
        timeout_seconds=settings.webhook_timeout_seconds,
        tick_seconds=settings.webhook_tick_seconds,
        concurrency=settings.webhook_concurrency,
        clock=clock,
    )

    def publish_feeds(bus_: Bus) -> Callable[[], Awaitable[None]]:
        return FeedRelay(
            app, bus_, source=settings.partners_source, replicas=settings.stream_replicas
        ).publish_feeds

    return ServiceDefinition(
        settings=settings,
        app=app,
        translate=bus.translate,
        router=api.router(app, rules),
        follows=bus.FOLLOWS,
        history_rule=RULES["history"],
        background=[app.views.follow, worker.deliver_webhooks],
        bus_jobs=[publish_feeds],
        description="Partner organisations: the registry, a feed per partner on NATS (each its"
        " own stream), Standard Webhooks with retries for partners without NATS, delivery status"
        " per partner and per case.",
    )
