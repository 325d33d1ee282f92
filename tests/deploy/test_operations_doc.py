"""docs/operations.md matches the code: its settings table names every variable the services read
with its default, nothing they do not read but what is pending, and its Pending list is
tests/deploy/slots.py's."""

from __future__ import annotations

import re

from pydantic_core import PydanticUndefined

from shared.settings import SECRETS_DIR_VARIABLE
from tests.deploy.files import ROOT, compose, issuer_settings, settings_classes
from tests.deploy.slots import PENDING_COMMANDS, PENDING_SETTINGS

DOC = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
ROW = re.compile(r"^\| `(KRING_[A-Z_]+)` \| ([^|]+) \| ([^|]+) \|", re.M)


def _table() -> dict[str, tuple[str, str]]:
    return {m.group(1): (m.group(2).strip(), m.group(3).strip()) for m in ROW.finditer(DOC)}


def _read() -> dict[str, tuple[object, set[str]]]:
    found: dict[str, tuple[object, set[str]]] = {}
    for service, settings in {**settings_classes(), "issuer": issuer_settings()}.items():
        for field, info in settings.model_fields.items():
            if info.exclude:
                continue
            alias = info.validation_alias
            name = alias if isinstance(alias, str) else f"KRING_{field.upper()}"
            default = info.default if info.default is not PydanticUndefined else None
            found.setdefault(name, (default, set()))[1].add(service)
    found[SECRETS_DIR_VARIABLE] = (None, set(settings_classes()))  # read by every service
    return found


def test_every_setting_the_services_read_is_in_the_table_with_its_readers() -> None:
    table = _table()
    for name, (_, services) in _read().items():
        assert name in table, f"{name} missing from docs/operations.md"
        readers = table[name][0]
        four = set(settings_classes())
        if services == four:
            expected = "all"
        elif services == four | {"issuer"}:
            expected = "all, issuer"
        else:
            expected = ", ".join(sorted(services))
        assert readers == expected, name


def test_every_default_in_the_table_is_the_code_s() -> None:
    table = _table()
    for name, (default, _) in _read().items():
        shown = table[name][1]
        if default is None or isinstance(default, dict):
            continue
        value = getattr(default, "value", default)
        assert shown.startswith(f"`{value}`"), f"{name}: the table says {shown}, the code {value}"


def test_the_table_names_nothing_the_code_does_not_read_but_what_is_pending() -> None:
    assert set(_table()) - set(_read()) == set(PENDING_SETTINGS) & set(_table())


def test_the_pending_list_is_the_slots() -> None:
    pending = DOC.split("## Pending", 1)[1].split("\n## ", 1)[0]
    for name in PENDING_SETTINGS:
        assert f"`{name}`" in pending, name
    for words in PENDING_COMMANDS:
        assert f"`kring {' '.join(words)}" in pending, words


def test_every_compose_service_is_described() -> None:
    install = DOC.split("## Install with docker compose", 1)[1].split("\n## ", 1)[0]
    for name in compose()["services"]:
        assert f"`{name}`" in install, name
