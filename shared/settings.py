"""Configuration: one typed settings object per service, read from the environment only.

Every variable is ``KRING_*``; the README lists them all. Any of them may also come from a file
named like the variable in lower case (``kring_cipher_key``) in the folder ``KRING_SECRETS_DIR``
names, as compose and Kubernetes mount secrets (``/run/secrets``); a variable set in the
environment wins over its file. ``describe()`` gives the settings with secrets masked, for the
start-up log line.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The folder of secret files (``/run/secrets``), read for every setting.
SECRETS_DIR = "KRING_SECRETS_DIR"


class SettingError(ValueError):
    """A setting that cannot be read; the message names the variable (never a secret's value)."""


class StoreKind(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"


class LogFormat(StrEnum):
    AUTO = "auto"  # console on a terminal, JSON otherwise
    JSON = "json"
    CONSOLE = "console"


class ServiceSettings(BaseSettings):
    """What every service reads. Subclasses add their own and set the service name and port."""

    model_config = SettingsConfigDict(
        env_prefix="KRING_", extra="ignore", frozen=True, populate_by_name=True
    )

    service_name: str = Field("service", exclude=True)
    nats_url: str = "nats://127.0.0.1:4222"
    data_dir: Path = Path("data")
    store: StoreKind = StoreKind.SQLITE
    postgres_url: SecretStr | None = None
    postgres_schema: str | None = None
    cipher_key: SecretStr | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.AUTO
    consumer_max_deliver: int = Field(5, ge=1)
    # How long JetStream waits for an ack before redelivering (e.g. after a crash).
    consumer_ack_wait_seconds: float = Field(10.0, gt=0)
    stream_replicas: int = Field(1, ge=1, le=5)

    def __init__(self, **values: Any) -> None:
        folder = os.environ.get(SECRETS_DIR)
        if folder and "_secrets_dir" not in values:
            if not Path(folder).is_dir():
                raise SettingError(f"{SECRETS_DIR}: {folder} is not a folder")
            values["_secrets_dir"] = folder
        super().__init__(**values)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / f"{self.service_name}.sqlite"

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = self.model_dump(mode="json")
        for key in described:
            if isinstance(getattr(self, key), SecretStr):
                described[key] = "***"
        return described
