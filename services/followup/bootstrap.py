"""Follow-up's composition root: the application with its schedule, and the timer loop."""

from __future__ import annotations

import asyncio

from services.followup import api, bus
from services.followup.access import RULES
from services.followup.app import FollowupApplication
from services.followup.settings import FollowupSettings
from shared.clock import Clock
from shared.runtime import ServiceDefinition
from shared.store import eventsourcing_env


def build(
    settings: FollowupSettings | None = None, clock: Clock | None = None
) -> ServiceDefinition:
    settings = settings or FollowupSettings()
    app = FollowupApplication(
        env=eventsourcing_env(settings), clock=clock, schedule=settings.followup_schedule()
    )

    async def timers() -> None:
        while True:
            await asyncio.to_thread(app.fire_due_timers)
            await asyncio.sleep(settings.timer_tick_seconds)

    return ServiceDefinition(
        settings=settings,
        app=app,
        translate=bus.translate,
        router=api.router(app),
        follows=bus.FOLLOWS,
        history_rule=RULES["history"],
        background=[app.views.follow, timers],
        description="Follow-up after the plan: the contacts of the model's schedule and the"
        " reminder of the next meeting as durable timers (FollowUpDue when due), outcomes per"
        " agreement, follow-up conferences.",
    )
