"""Follow-up's settings: the contact schedule per model, how long a schedule day lasts, and the
reminder of the next meeting. A malformed schedule fails at start, naming its variable."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import NoDecode

from services.followup.domain import DEFAULT_CONTACTS, RESERVED_KINDS, Contact, Schedule
from shared.events import ConferenceModel
from shared.settings import ServiceSettings


class ScheduledContact(BaseModel):
    """One entry of ``KRING_FOLLOWUP_SCHEDULE``: ``{"kind": "research", "after_days": 91}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")
    after_days: float = Field(gt=0, le=3660)

    @field_validator("kind")
    @classmethod
    def not_the_reminder(cls, kind: str) -> str:
        if kind in RESERVED_KINDS:
            raise ValueError(
                f"{kind!r} is made from the plan's next meeting, not a contact of the schedule"
            )
        return kind


Contacts = Annotated[list[ScheduledContact], Field(min_length=1, max_length=20)]


class FollowupSettings(ServiceSettings):
    service_name: str = Field("followup", exclude=True)
    http_port: int = Field(8004, validation_alias="KRING_FOLLOWUP_PORT")
    #: Per model a list of contacts (JSON); a model not named has the default list.
    schedule: Annotated[dict[ConferenceModel, Contacts], NoDecode] = Field(
        default_factory=dict, validation_alias="KRING_FOLLOWUP_SCHEDULE"
    )
    #: How long one schedule day lasts on the clock: 86400 in earnest, less to compress time.
    seconds_per_day: float = Field(
        86_400.0, gt=0, le=86_400.0, validation_alias="KRING_FOLLOWUP_SECONDS_PER_DAY"
    )
    #: The reminder of the plan's next meeting is due this many days before it (09:00 Amsterdam).
    reminder_days_before: int = Field(
        7, ge=0, le=365, validation_alias="KRING_FOLLOWUP_REMINDER_DAYS_BEFORE"
    )
    timer_tick_seconds: float = Field(1.0, gt=0, validation_alias="KRING_TIMER_TICK_SECONDS")

    @field_validator("schedule", mode="before")
    @classmethod
    def parse_json(cls, value: Any) -> Any:
        if isinstance(value, str | bytes):
            try:
                return json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as error:
                raise ValueError(
                    'not JSON; expected e.g. {"family": [{"kind": "coordinator_call",'
                    f' "after_days": 28}}, {{"kind": "research", "after_days": 91}}]}} ({error})'
                ) from None
        return value

    def followup_schedule(self) -> Schedule:
        return Schedule(
            contacts={
                model.value: tuple(Contact(c.kind, c.after_days) for c in contacts)
                for model, contacts in self.schedule.items()
            },
            default=DEFAULT_CONTACTS,
            seconds_per_day=self.seconds_per_day,
            reminder_days_before=self.reminder_days_before,
        )
