from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class CoordinationSettings(ServiceSettings):
    service_name: str = Field("coordination", exclude=True)
    http_port: int = Field(8002, validation_alias="KRING_COORDINATION_PORT")
    first_contact_days: float = Field(3.0, gt=0, validation_alias="KRING_FIRST_CONTACT_DAYS")
    #: How often the overdue job looks for first contacts past their deadline.
    tick_seconds: float = Field(60.0, gt=0, validation_alias="KRING_COORDINATION_TICK_SECONDS")
