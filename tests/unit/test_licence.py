"""The licence is declared where packaging tools and people look for it."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_package_declares_the_eupl_by_its_spdx_id_and_ships_the_licence_file() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "EUPL-1.2"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "EUPL-1.2" in text and "Version 1.2" in text
    assert "https://interoperable-europe.ec.europa.eu/collection/eupl/eupl-text-eupl-12" in text
