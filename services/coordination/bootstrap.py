"""Coordination's composition root."""

from __future__ import annotations

from services.coordination import api, bus
from services.coordination.app import CoordinationApplication
from services.coordination.settings import CoordinationSettings
from shared.clock import Clock
from shared.runtime import ServiceDefinition
from shared.store import eventsourcing_env


def build(
    settings: CoordinationSettings | None = None, clock: Clock | None = None
) -> ServiceDefinition:
    settings = settings or CoordinationSettings()
    app = CoordinationApplication(
        env=eventsourcing_env(settings),
        clock=clock,
        first_contact_days=settings.first_contact_days,
    )
    return ServiceDefinition(
        settings=settings,
        app=app,
        translate=bus.translate,
        router=api.router(app),
        follows=bus.FOLLOWS,
        description="Coordinator pool, assignment, and the conference held.",
    )
