"""The partners service's settings: its port, where partners fetch their copies, the feed's
CloudEvents ``source``, and how webhooks are sent (back-off, time-outs, which targets)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import AnyHttpUrl, Field

from services.partners.domain import RetryPolicy
from shared.partner_feed import DEFAULT_SOURCE
from shared.settings import ServiceSettings


class PartnersSettings(ServiceSettings):
    service_name: str = Field("partners", exclude=True)
    http_port: int = Field(8006, validation_alias="KRING_PARTNERS_PORT")
    #: Where partners reach plans' API for their copies (the links in each ``plan-shared``).
    plans_public_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://127.0.0.1:8003"), validation_alias="KRING_PARTNERS_PLANS_URL"
    )
    #: The CloudEvents ``source`` of every partner event; the NL GOV profile's form is
    #: ``urn:nld:oin:<OIN>:systeem:<system>``.
    partners_source: str = Field(DEFAULT_SOURCE, min_length=1, max_length=200)
    #: Webhooks: how often due deliveries are looked for, and the back-off.
    webhook_tick_seconds: float = Field(1.0, gt=0)
    webhook_first_retry_seconds: float = Field(10.0, gt=0)
    webhook_longest_retry_seconds: float = Field(6 * 3600.0, gt=0)
    webhook_give_up_seconds: float = Field(3 * 86400.0, gt=0)
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=120)
    #: How long the old secret still signs after a rotation (two signatures meanwhile).
    webhook_rotation_overlap_seconds: float = Field(86400.0, ge=0)
    #: Loopback, private, link-local and other non-public targets are refused unless this is
    #: set (tests and a machine's own receivers only).
    webhook_allow_private: bool = False
    #: ``http://`` endpoints are refused unless this is set (tests only: a webhook's body is
    #: signed, not hidden).
    webhook_allow_http: bool = False
    #: How many webhooks are sent at once (each destination one case at a time).
    webhook_concurrency: int = Field(8, ge=1, le=100)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            first=timedelta(seconds=self.webhook_first_retry_seconds),
            longest=timedelta(seconds=self.webhook_longest_retry_seconds),
            give_up_after=timedelta(seconds=self.webhook_give_up_seconds),
        )
