"""The console's settings: where the issuer and the four services are, and how it is served."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.identity import ClaimNames
from shared.settings import LogFormat, existing_folder, secrets_sources
from shared.tokens import ASYMMETRIC, OIDCConfig

SERVICES = ("intake", "coordination", "plans", "followup")


class ConsoleSettings(BaseSettings):
    """``KRING_*`` only, like every service; any may come from ``KRING_SECRETS_DIR``."""

    model_config = SettingsConfigDict(env_prefix="KRING_", extra="ignore", frozen=True)

    service_name: str = Field("console", exclude=True)
    http_host: str = "127.0.0.1"
    console_port: int = 8000
    #: Where people reach the console: its OIDC redirect is ``<url>/auth/callback``, and its
    #: cookies are ``Secure`` when this is https.
    console_url: str = "http://127.0.0.1:8000"
    #: The OAuth client the console signs people in as, registered with the issuer (the
    #: development issuer registers ``kring-console`` as a public client with PKCE).
    console_client_id: str = "kring-console"
    #: For an issuer that registers the console as a confidential client.
    console_client_secret: SecretStr | None = None
    #: Signed out after this long without a request (and always when the token expires).
    console_idle_minutes: int = Field(30, ge=1, le=24 * 60)
    #: Seconds to wait for a service to answer.
    console_timeout_seconds: float = Field(10.0, gt=0, le=120)
    intake_url: str = "http://127.0.0.1:8001"
    coordination_url: str = "http://127.0.0.1:8002"
    plans_url: str = "http://127.0.0.1:8003"
    followup_url: str = "http://127.0.0.1:8004"
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.AUTO
    # -- identity (as the services read it) ----------------------------------------------
    oidc_issuer: str = Field(min_length=1)
    oidc_audience: str = "kring"
    oidc_jwks_url: str | None = None
    oidc_algorithms: str = "RS256,ES256"
    oidc_roles_claim: str = "roles"
    oidc_regions_claim: str = "kring_regions"
    oidc_coordinator_claim: str = "kring_coordinator_id"
    oidc_organisation_claim: str = "kring_organisation"
    oidc_participant_claim: str = "kring_participant"
    # -- the HTTP edge ---------------------------------------------------------------------
    allowed_hosts: str = "127.0.0.1,localhost,::1"
    max_body_bytes: int = Field(262_144, ge=1024)
    #: htmx, vendored by ``make install`` (``shared.assets``); unset: the checkout's.
    assets_dir: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return secrets_sources(settings_cls, init_settings, env_settings)

    @field_validator("assets_dir")
    @classmethod
    def assets_folder(cls, value: Path | None) -> Path | None:
        return existing_folder(value)

    @field_validator("console_url", "intake_url", "coordination_url", "plans_url", "followup_url")
    @classmethod
    def http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("oidc_algorithms")
    @classmethod
    def asymmetric_only(cls, value: str) -> str:
        named = {a.strip() for a in value.split(",") if a.strip()}
        if not named or named - ASYMMETRIC:
            raise ValueError(f"only asymmetric algorithms: {', '.join(sorted(ASYMMETRIC))}")
        return value

    @property
    def redirect_uri(self) -> str:
        return f"{self.console_url}/auth/callback"

    @property
    def secure_cookies(self) -> bool:
        return self.console_url.startswith("https://")

    def service_urls(self) -> dict[str, str]:
        return {name: getattr(self, f"{name}_url") for name in SERVICES}

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
