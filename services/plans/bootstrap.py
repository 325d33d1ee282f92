"""Plans' composition root."""

from __future__ import annotations

from services.plans import api, bus
from services.plans.app import PlansApplication
from services.plans.settings import PlansSettings
from shared.clock import Clock
from shared.runtime import ServiceDefinition
from shared.store import eventsourcing_env


def build(settings: PlansSettings | None = None, clock: Clock | None = None) -> ServiceDefinition:
    settings = settings or PlansSettings()
    app = PlansApplication(env=eventsourcing_env(settings), clock=clock)
    return ServiceDefinition(
        settings=settings,
        app=app,
        translate=bus.translate,
        router=api.router(app),
        follows=bus.FOLLOWS,
        description="The plan: written up after the conference, versioned, distributed.",
    )
