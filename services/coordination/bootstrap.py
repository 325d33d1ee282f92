"""Coordination's composition root: the application, and the overdue job beside it."""

from __future__ import annotations

import asyncio

from services.coordination import api, bus
from services.coordination.access import RULES
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

    async def overdue_first_contacts() -> None:
        while True:
            await asyncio.to_thread(app.record_overdue)
            await asyncio.sleep(settings.tick_seconds)

    return ServiceDefinition(
        settings=settings,
        app=app,
        translate=bus.translate,
        router=api.router(app),
        follows=bus.FOLLOWS,
        history_rule=RULES["history"],
        background=[app.views.follow, overdue_first_contacts],
        description="Coordinator pool and assignment, the preparation with the participants,"
        " and the conference held.",
    )
