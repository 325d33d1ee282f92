"""Intake's composition root: the one place real adapters are wired."""

from __future__ import annotations

from services.intake import api, bus
from services.intake.access import RULES
from services.intake.app import IntakeApplication
from services.intake.claims import answer_clarifications
from services.intake.settings import IntakeSettings
from shared.clock import Clock
from shared.runtime import ServiceDefinition
from shared.store import eventsourcing_env


def build(settings: IntakeSettings | None = None, clock: Clock | None = None) -> ServiceDefinition:
    settings = settings or IntakeSettings()
    app = IntakeApplication(env=eventsourcing_env(settings), clock=clock)
    return ServiceDefinition(
        settings=settings,
        app=app,
        translate=bus.translate,
        router=api.router(app),
        follows=bus.FOLLOWS,
        history_rule=RULES["history"],
        on_bus=[answer_clarifications(app)],
        background=[app.views.follow],
        description="Requests for a conference: submission, acceptance, withdrawal.",
    )
