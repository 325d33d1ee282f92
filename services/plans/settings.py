from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class PlansSettings(ServiceSettings):
    service_name: str = Field("plans", exclude=True)
    http_port: int = Field(8003, validation_alias="KRING_PLANS_PORT")
