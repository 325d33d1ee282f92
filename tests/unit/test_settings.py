"""The settings a service prints at start: every value readable, no secret."""

from services.plans.settings import PlansSettings
from shared.settings import ServiceSettings


def test_the_printed_settings_mask_every_secret_and_read_plainly() -> None:
    settings = PlansSettings(
        smtp_password="smtp-secret",  # type: ignore[arg-type]
        cipher_key="cipher-secret",  # type: ignore[arg-type]
        postgres_url="postgresql://u:pg-secret@db/kring",  # type: ignore[arg-type]
    )
    described = settings.describe()
    printed = repr(described)
    assert "secret" not in printed
    assert described["smtp_password"] == described["cipher_key"] == "***"
    assert (described["store"], described["data_dir"]) == ("sqlite", "data")


def test_an_unset_secret_shows_as_unset() -> None:
    # An operator must see that no cipher key is set (the store is not encrypted).
    assert ServiceSettings().describe()["cipher_key"] is None
