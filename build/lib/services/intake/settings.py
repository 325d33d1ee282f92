from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    service_name: str = Field("intake", exclude=True)
    http_port: int = Field(8001, validation_alias="KRING_INTAKE_PORT")
