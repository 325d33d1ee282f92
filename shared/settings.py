"""Configuration: one typed settings object per service, read from the environment only.

Every variable is ``KRING_*``; the README lists them all. ``describe()`` gives the settings with
secrets masked, for the start-up log line. Any of them may also come from a file named like the
variable, lower-case, in the folder ``KRING_SECRETS_DIR`` (``/run/secrets/kring_nats_password``:
how compose and Kubernetes mount secrets); the environment wins over a file.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import ssl
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from shared.identity import ClaimNames
from shared.tokens import ASYMMETRIC, OIDCConfig

SECRETS_DIR_VARIABLE = "KRING_SECRETS_DIR"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: A PostgreSQL schema Kring makes tables in: a plain lower-case identifier.
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class SettingError(ValueError):
    """A setting that cannot be read; the message names the variable (never a secret's value)."""


def secrets_sources(
    settings_cls: type[BaseSettings],
    init_settings: PydanticBaseSettingsSource,
    env_settings: PydanticBaseSettingsSource,
) -> tuple[PydanticBaseSettingsSource, ...]:
    """The environment, then the files in ``KRING_SECRETS_DIR`` (if set): for any settings
    class of Kring's (``settings_customise_sources``)."""
    secrets_dir = os.environ.get(SECRETS_DIR_VARIABLE)
    if not secrets_dir:
        return init_settings, env_settings
    if not Path(secrets_dir).is_dir():
        raise SettingError(f"{SECRETS_DIR_VARIABLE}: {secrets_dir} is not a folder")
    files = SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir, case_sensitive=False)
    return init_settings, env_settings, files


def problem_line(error: ValidationError) -> str:
    """The first wrong setting of ``error`` by its variable, with what is wrong, never its value
    (it may be a secret): one line for a process that cannot start."""
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "?"
    variable = field if field.upper().startswith("KRING_") else f"KRING_{field.upper()}"
    return f"{variable.upper()}: {first['msg']}"


class StoreKind(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"


class LogFormat(StrEnum):
    AUTO = "auto"  # console on a terminal, JSON otherwise
    JSON = "json"
    CONSOLE = "console"


class EdgeSettings(BaseSettings):
    """What every process with an HTTP edge reads (the services and the console): who it trusts
    to say who someone is, the edge's limits, how it logs. Subclasses set the name and port."""

    model_config = SettingsConfigDict(
        env_prefix="KRING_", extra="ignore", frozen=True, populate_by_name=True
    )

    service_name: str = Field("service", exclude=True)
    http_host: str = "127.0.0.1"
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.AUTO

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read ``KRING_SECRETS_DIR`` when the settings are made, not when the class is: a
        process (or a test) sets it before it reads its settings."""
        return secrets_sources(settings_cls, init_settings, env_settings)

    # -- identity: every call but /health/* carries a bearer token from this issuer --------
    oidc_issuer: str = Field(min_length=1)
    oidc_audience: str = "kring"
    oidc_jwks_url: str | None = None
    oidc_algorithms: str = "RS256,ES256"
    oidc_roles_claim: str = "roles"
    oidc_regions_claim: str = "kring_regions"
    oidc_coordinator_claim: str = "kring_coordinator_id"
    oidc_organisation_claim: str = "kring_organisation"
    oidc_participant_claim: str = "kring_participant"
    # -- the HTTP edge ----------------------------------------------------------------------
    #: Host names (no port) requests may name; ``*`` allows any, ``.example.org`` its subdomains.
    allowed_hosts: str = "127.0.0.1,localhost,::1"
    max_body_bytes: int = Field(1_048_576, ge=1024)
    #: The web pages' scripts, vendored by ``make install`` (``shared.assets``); unset: the
    #: checkout's ``assets/vendor``.
    assets_dir: Path | None = None

    @field_validator("assets_dir")
    @classmethod
    def assets_folder(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(
                "expected the folder of the pages' scripts: `make install` vendors them into"
                " assets/vendor (the image has them in /opt/kring/assets)"
            )
        return value

    @field_validator("oidc_issuer", "oidc_jwks_url")
    @classmethod
    def http_url(cls, value: str | None) -> str | None:
        if value is not None and not _url(value, ("https", "http")):
            raise ValueError("expected an https:// (or http://) URL")
        return value

    @field_validator("log_level")
    @classmethod
    def known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def some_host(cls, value: str) -> str:
        if not [h for h in value.split(",") if h.strip()]:
            raise ValueError("name at least one host (or * for any)")
        return value

    @field_validator("http_host")
    @classmethod
    def bindable(cls, value: str) -> str:
        if not _host(value):
            raise ValueError("expected an IP address or a host name to listen on")
        return value

    @field_validator(
        "oidc_audience",
        "oidc_roles_claim",
        "oidc_regions_claim",
        "oidc_coordinator_claim",
        "oidc_organisation_claim",
        "oidc_participant_claim",
    )
    @classmethod
    def named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("oidc_algorithms")
    @classmethod
    def asymmetric_only(cls, value: str) -> str:
        named = {a.strip() for a in value.split(",") if a.strip()}
        if not named or named - ASYMMETRIC:
            raise ValueError(f"only asymmetric algorithms: {', '.join(sorted(ASYMMETRIC))}")
        return value

    def oidc(self) -> OIDCConfig:
        return OIDCConfig(
            issuer=self.oidc_issuer,
            audience=self.oidc_audience,
            jwks_url=self.oidc_jwks_url,
            algorithms=tuple(a.strip() for a in self.oidc_algorithms.split(",") if a.strip()),
            claims=ClaimNames(
                roles=self.oidc_roles_claim,
                regions=self.oidc_regions_claim,
                coordinator=self.oidc_coordinator_claim,
                organisation=self.oidc_organisation_claim,
                participant=self.oidc_participant_claim,
            ),
        )

    def hosts(self) -> tuple[str, ...]:
        return tuple(h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip())

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = self.model_dump(mode="json")
        for key in described:
            if isinstance(getattr(self, key), SecretStr):
                described[key] = "***"
        return described


class ServiceSettings(EdgeSettings):
    """What every service reads. Subclasses add their own and set the service name and port."""

    nats_url: str = "nats://127.0.0.1:4222"
    #: This service's own NATS identity (``shared.permissions``); a process refuses to start
    #: without both.
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    #: The CA (a PEM bundle) that NATS's certificate is checked against, for a deployment that
    #: runs NATS with TLS under its own CA (``tls://`` URLs alone use the system's CAs).
    nats_tls_ca_file: Path | None = None
    data_dir: Path = Path("data")
    store: StoreKind = StoreKind.SQLITE
    postgres_url: SecretStr | None = None
    postgres_schema: str | None = None
    cipher_key: SecretStr | None = None
    #: During a rotation, the key ``cipher_key`` replaces: read, never written (``kring rekey``).
    cipher_key_fallback: SecretStr | None = None
    http_port: int = 8000
    consumer_max_deliver: int = Field(5, ge=1)
    # How long JetStream waits for an ack before redelivering (e.g. after a crash).
    consumer_ack_wait_seconds: float = Field(10.0, gt=0)
    stream_replicas: int = Field(1, ge=1, le=5)
    # A relay with no round succeeding for this long makes /health/ready 503 (shared.relay).
    relay_unhealthy_seconds: float = Field(30.0, gt=0)
    #: How long the lease of the active replica lasts unrenewed (PostgreSQL; shared.lease): a
    #: replica that dies is replaced within about this long.
    lease_seconds: float = Field(10.0, ge=2, le=300)

    @field_validator("nats_url")
    @classmethod
    def nats_urls(cls, value: str) -> str:
        urls = [url.strip() for url in value.split(",") if url.strip()]
        if not urls or any(not _url(url, ("nats", "tls")) for url in urls):
            raise ValueError("expected nats://host:port (or tls://), several comma-separated")
        return value

    @field_validator("nats_tls_ca_file")
    @classmethod
    def ca_bundle(cls, value: Path | None) -> Path | None:
        if value is None:
            return value
        try:
            ssl.create_default_context(cafile=str(value))
        except (OSError, ssl.SSLError):
            raise ValueError("expected a readable PEM file of CA certificates") from None
        return value

    @field_validator("http_port")
    @classmethod
    def port(cls, value: int) -> int:
        if not 0 <= value < 65536:
            raise ValueError("expected a port, 1 to 65535 (0: any free one)")
        return value

    @field_validator("postgres_schema")
    @classmethod
    def schema_name(cls, value: str | None) -> str | None:
        if value is not None and not SCHEMA_NAME.fullmatch(value):
            raise ValueError("expected a lower-case identifier (letters, digits, _)")
        return value

    @field_validator("cipher_key", "cipher_key_fallback")
    @classmethod
    def aes_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        try:
            size = len(base64.b64decode(value.get_secret_value(), validate=True))
        except (binascii.Error, ValueError):
            size = 0
        if size not in (16, 24, 32):
            raise ValueError("expected 16, 24 or 32 random bytes in base64 (deploy/make-secrets)")
        return value

    @field_validator("cipher_key_fallback", mode="before")
    @classmethod
    def no_fallback_when_blank(cls, value: Any) -> Any:
        # Compose mounts the fallback's secret file always, empty but during a rotation.
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, SecretStr) and not value.get_secret_value().strip():
            return None
        return value

    @field_validator("cipher_key_fallback")
    @classmethod
    def fallback_beside_a_key(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        if value is None:
            return value
        key = info.data.get("cipher_key")
        if key is None:
            raise ValueError("it is the key KRING_CIPHER_KEY replaces: set both, or neither")
        if value.get_secret_value() == key.get_secret_value():
            raise ValueError("it is the same key as KRING_CIPHER_KEY")
        return value

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / f"{self.service_name}.sqlite"


def _url(value: str, schemes: tuple[str, ...]) -> bool:
    try:
        parts = urlsplit(value.strip())
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:  # a port that is not a number
        return False
    return parts.scheme in schemes and bool(parts.hostname) and port_ok


def _host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        pass
    labels = value.rstrip(".").split(".")
    if all(label.isdigit() for label in labels):  # a dotted number that is not an address
        return False
    label = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
    return all(label.fullmatch(part) for part in labels)
