"""The console's catalogues: every message the console can show has a Dutch and an English
text, with the same placeholders, and no catalogue keeps a message the console no longer has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from services.console.i18n import LABELS, LANGUAGES, LOCALE_DIR, labeller, translations

CONSOLE = Path(__file__).resolve().parents[2] / "services" / "console"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def extracted() -> set[str]:
    """Every message of the console's Python (``N_``) and templates (``_``)."""
    found = extract_from_dir(
        str(CONSOLE),
        method_map=[("**.py", "python"), ("templates/**.html", "jinja2")],
        options_map={"templates/**.html": {"extensions": "jinja2.ext.i18n"}},
        keywords={"_": None, "N_": None, "gettext": None},
    )
    messages = set()
    for _, _, message, _, _ in found:
        messages.add(message if isinstance(message, str) else message[0])
    return messages


def catalogue(language: str) -> dict[str, str]:
    with (LOCALE_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
        return {m.id: m.string for m in read_po(source) if m.id}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_has_a_text_in_the_language(language: str) -> None:
    messages = extracted()
    assert len(messages) > 300  # the extraction found the templates, not nothing
    texts = catalogue(language)
    assert sorted(messages - set(texts)) == []  # none missing
    assert sorted(set(texts) - messages) == []  # none stale
    assert [m for m, t in texts.items() if not t.strip()] == []
    for message, text in texts.items():
        assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(message)), message


def test_dutch_is_dutch_and_the_services_values_have_names_in_both() -> None:
    dutch = catalogue("nl")
    same = [m for m, t in dutch.items() if t == m]
    # Only words the same in both (PDF, Model, Status, …) stay as they are.
    assert len(same) < len(dutch) / 10, same
    nl, en = translations("nl"), translations("en")
    for kind, values in LABELS.items():
        for value in values:
            assert labeller(nl.gettext)(kind, value), (kind, value)
            assert labeller(en.gettext)(kind, value), (kind, value)
    assert labeller(nl.gettext)("stage", "preparing") == "in voorbereiding"
    assert labeller(en.gettext)("stage", "preparing") == "preparing"
    # A value a service adds later is shown as it came, not hidden.
    assert labeller(nl.gettext)("role", "neighbour_of_the_school") == "neighbour_of_the_school"
