from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator

from shared.settings import ServiceSettings


class PlansSettings(ServiceSettings):
    service_name: str = Field("plans", exclude=True)
    http_port: int = Field(8003, validation_alias="KRING_PLANS_PORT")
    #: No host: e-mail copies are recorded as not sent, and the coordinator hands them over.
    smtp_host: str | None = None
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_from: str = "kring@localhost"
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = Field(10.0, gt=0)
    #: How often the delivery worker looks for copies to e-mail.
    delivery_tick_seconds: float = Field(
        1.0, gt=0, validation_alias="KRING_PLANS_DELIVERY_TICK_SECONDS"
    )
    #: Tries of one e-mail (connection failures, 4xx answers) before it is recorded as failed.
    delivery_max_attempts: int = Field(
        5, ge=1, validation_alias="KRING_PLANS_DELIVERY_MAX_ATTEMPTS"
    )
    #: How often plans asks intake for the questions and requirements of plans lacking them.
    claim_tick_seconds: float = Field(1.0, gt=0, validation_alias="KRING_PLANS_CLAIM_TICK_SECONDS")
    #: How long one such request waits for intake's answer.
    claim_timeout_seconds: float = Field(
        2.0, gt=0, validation_alias="KRING_PLANS_CLAIM_TIMEOUT_SECONDS"
    )

    @field_validator("smtp_from")
    @classmethod
    def an_address(cls, value: str) -> str:
        # The shape only: kring@localhost, the default, is no address email-validator accepts.
        if not re.fullmatch(r"[^@\s]+@[^@\s]+", value):
            raise ValueError("expected an e-mail address, e.g. kring@example.org")
        return value

    @field_validator("smtp_host")
    @classmethod
    def a_host(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c in value for c in " /:@")):
            raise ValueError("expected the SMTP server's host name or address")
        return value
