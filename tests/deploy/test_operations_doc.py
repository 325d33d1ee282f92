"""docs/operations.md matches the code: its settings table names every variable the services read
with its default, nothing they do not read but what is pending, and its Pending list is
tests/deploy/slots.py's."""

from __future__ import annotations

import re

from pydantic_core import PydanticUndefined

from shared.settings import SECRETS_DIR_VARIABLE
from tests.deploy.files import (
    CONSOLE,
    ROOT,
    compose,
    console_settings,
    issuer_settings,
    settings_classes,
)
from tests.deploy.slots import PENDING_COMMANDS, PENDING_SETTINGS

DOC = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
ROW = re.compile(r"^\| `(KRING_[A-Z_]+)` \| ([^|]+) \| ([^|]+) \|", re.M)


def _table() -> dict[str, tuple[str, str]]:
    return {m.group(1): (m.group(2).strip(), m.group(3).strip()) for m in ROW.finditer(DOC)}


def _read() -> dict[str, dict[str, object]]:
    """Each variable: who reads it (the services, the console, the issuer), with its default."""
    found: dict[str, dict[str, object]] = {}
    readers = {**settings_classes(), CONSOLE: console_settings(), "issuer": issuer_settings()}
    for reader, settings in readers.items():
        for field, info in settings.model_fields.items():
            if info.exclude:
                continue
            alias = info.validation_alias
            name = alias if isinstance(alias, str) else f"KRING_{field.upper()}"
            default = info.default if info.default is not PydanticUndefined else None
            found.setdefault(name, {})[reader] = default
    # Read by every service and the console (shared.settings' secrets sources).
    found[SECRETS_DIR_VARIABLE] = dict.fromkeys([*settings_classes(), CONSOLE])
    return found


def _readers(readers: set[str]) -> str:
    """How the table names them: ``all`` for the five services, then the others."""
    services = set(settings_classes())
    if readers >= services:
        return ", ".join(["all", *sorted(readers - services, key=[CONSOLE, "issuer"].index)])
    return ", ".join(sorted(readers))


def test_every_setting_the_services_read_is_in_the_table_with_its_readers() -> None:
    table = _table()
    for name, read in _read().items():
        assert name in table, f"{name} missing from docs/operations.md"
        assert table[name][0] == _readers(set(read)), name


def test_every_default_in_the_table_is_the_code_s() -> None:
    # The first reader's default leads; a reader whose default differs is named beside it.
    table = _table()
    for name, read in _read().items():
        shown = table[name][1]
        defaults = [d for d in read.values() if d is not None and not isinstance(d, dict)]
        for index, default in enumerate(dict.fromkeys(getattr(d, "value", d) for d in defaults)):
            if index == 0:
                assert shown.startswith(f"`{default}`"), f"{name}: {shown}, the code {default}"
            else:
                assert f"`{default}`" in shown, f"{name}: {shown} lacks {default}"


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
