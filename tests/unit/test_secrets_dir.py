"""Any setting may come from a file in ``KRING_SECRETS_DIR`` (how compose and Kubernetes mount
secrets), read when the settings are made; the environment wins over a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.intake.settings import IntakeSettings


def test_a_setting_comes_from_its_file_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kring_nats_password").write_text("from-a-file\n")
    (tmp_path / "kring_nats_user").write_text("intake")
    monkeypatch.setenv("KRING_SECRETS_DIR", str(tmp_path))
    settings = IntakeSettings()
    assert settings.nats_user == "intake"
    assert settings.nats_password is not None
    assert settings.nats_password.get_secret_value() == "from-a-file"
    assert settings.describe()["nats_password"] == "***"

    monkeypatch.setenv("KRING_NATS_USER", "from-the-environment")
    assert IntakeSettings().nats_user == "from-the-environment"


def test_without_the_folder_nothing_is_read_from_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kring_nats_password").write_text("never read")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KRING_SECRETS_DIR", raising=False)
    assert IntakeSettings().nats_password is None
