"""The console's settings: where the issuer and the four services are, and how it is served."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from shared.settings import EdgeSettings

SERVICES = ("intake", "coordination", "plans", "followup")


class ConsoleSettings(EdgeSettings):
    """``KRING_*`` only, like every service; any may come from ``KRING_SECRETS_DIR``. Identity
    and the edge are read as the services read them (``EdgeSettings``)."""

    service_name: str = Field("console", exclude=True)
    console_port: int = 8000
    #: Where people reach the console: its OIDC redirect is ``<url>/auth/callback``, and its
    #: cookies are ``Secure`` when this is https.
    console_url: str = "http://127.0.0.1:8000"
    #: The OAuth client the console signs people in as, registered with the issuer (the
    #: development issuer registers ``kring-console`` as a public client with PKCE).
    console_client_id: str = "kring-console"
    #: For an issuer that registers the console as a confidential client.
    console_client_secret: SecretStr | None = None
    #: Where the console's server reaches the issuer, when that is not the issuer's own URL
    #: (``KRING_OIDC_ISSUER``, which tokens name and the browser is sent to): a cluster whose
    #: issuer is named by a port-forward's address. The discovery document and the code
    #: exchange go here; the browser still goes to the issuer's own URL.
    console_issuer_url: str | None = None
    #: Signed out after this long without a request (and always when the token expires).
    console_idle_minutes: int = Field(30, ge=1, le=24 * 60)
    #: Seconds to wait for a service to answer.
    console_timeout_seconds: float = Field(10.0, gt=0, le=120)
    intake_url: str = "http://127.0.0.1:8001"
    coordination_url: str = "http://127.0.0.1:8002"
    plans_url: str = "http://127.0.0.1:8003"
    followup_url: str = "http://127.0.0.1:8004"
    #: Forms are small: a quarter of a service's limit.
    max_body_bytes: int = Field(262_144, ge=1024)

    @field_validator("console_url", "intake_url", "coordination_url", "plans_url", "followup_url")
    @classmethod
    def service_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("console_issuer_url")
    @classmethod
    def issuer_url(cls, value: str | None) -> str | None:
        return None if value is None else cls.service_url(value)

    @property
    def redirect_uri(self) -> str:
        return f"{self.console_url}/auth/callback"

    @property
    def secure_cookies(self) -> bool:
        return self.console_url.startswith("https://")

    def service_urls(self) -> dict[str, str]:
        return {name: getattr(self, f"{name}_url") for name in SERVICES}
