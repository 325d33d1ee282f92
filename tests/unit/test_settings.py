"""The settings a service prints at start: every value readable, no secret."""

from pathlib import Path

import pytest

from services.plans.settings import PlansSettings
from shared.cipher import AESGCMCipher
from shared.settings import ServiceSettings, SettingError

KEY = AESGCMCipher.create_key(32)
OTHER_KEY = AESGCMCipher.create_key(32)


def test_the_printed_settings_mask_every_secret_and_read_plainly() -> None:
    settings = PlansSettings(
        smtp_password="smtp-secret",  # type: ignore[arg-type]
        cipher_key=KEY,  # type: ignore[arg-type]
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


def test_every_setting_may_come_from_a_file_in_the_secrets_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kring_cipher_key").write_text(KEY + "\n")
    (tmp_path / "kring_plans_delivery_max_attempts").write_text("7")
    monkeypatch.setenv("KRING_SECRETS_DIR", str(tmp_path))
    settings = PlansSettings()
    assert settings.cipher_key is not None
    assert settings.cipher_key.get_secret_value() == KEY
    assert settings.delivery_max_attempts == 7
    monkeypatch.setenv("KRING_CIPHER_KEY", OTHER_KEY)
    overridden = PlansSettings().cipher_key
    assert overridden is not None and overridden.get_secret_value() == OTHER_KEY


def test_a_secrets_folder_that_is_not_there_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KRING_SECRETS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(SettingError, match=r"KRING_SECRETS_DIR: .*nowhere is not a folder"):
        ServiceSettings()
