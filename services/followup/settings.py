from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from shared.settings import ServiceSettings


class FollowupSettings(ServiceSettings):
    service_name: str = Field("followup", exclude=True)
    http_port: int = Field(8004, validation_alias="KRING_FOLLOWUP_PORT")
    # About three months after the plan (seed 000); the demo and tests set seconds.
    research_delay_seconds: float = Field(
        91 * 24 * 3600, gt=0, validation_alias="KRING_FOLLOWUP_DELAY_SECONDS"
    )
    timer_tick_seconds: float = Field(1.0, gt=0, validation_alias="KRING_TIMER_TICK_SECONDS")

    @property
    def research_delay(self) -> timedelta:
        return timedelta(seconds=self.research_delay_seconds)
