"""Plans' composition root: the one place the SMTP adapter and the delivery worker are wired."""

from __future__ import annotations

from services.plans import api, bus
from services.plans.access import RULES
from services.plans.app import PlansApplication
from services.plans.claims import ClarificationFetcher
from services.plans.delivery import DeliveryWorker
from services.plans.mail import Mailer, SmtpMailer
from services.plans.settings import PlansSettings
from shared.clock import Clock
from shared.runtime import ServiceDefinition
from shared.store import eventsourcing_env


def build(
    settings: PlansSettings | None = None,
    clock: Clock | None = None,
    mailer: Mailer | None = None,
) -> ServiceDefinition:
    settings = settings or PlansSettings()
    app = PlansApplication(env=eventsourcing_env(settings), clock=clock)
    worker = DeliveryWorker(
        app,
        mailer or SmtpMailer.from_settings(settings),
        tick_seconds=settings.delivery_tick_seconds,
        max_attempts=settings.delivery_max_attempts,
    )
    fetcher = ClarificationFetcher(
        app,
        tick_seconds=settings.claim_tick_seconds,
        timeout_seconds=settings.claim_timeout_seconds,
    )
    return ServiceDefinition(
        settings=settings,
        app=app,
        translate=bus.translate,
        router=api.router(app),
        follows=bus.FOLLOWS,
        history_rule=RULES["history"],
        background=[app.views.follow, worker.deliver_plans, fetcher.fetch_clarifications],
        on_bus=[fetcher.attach],
        description="The plan: written up after the conference, versioned, signed off where a"
        " minimum requirement was set, distributed to every participant, delivered.",
    )
