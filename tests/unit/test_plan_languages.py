"""The languages Kring prints a plan in: every text in every language, a copy rendered in each,
the Arabic copy right to left (HTML ``dir="rtl"``) and its PDF in an embedded font that has the
script, with the letters shaped (joined) as Arabic is written."""

from __future__ import annotations

import re
import uuid
import zlib
from collections import defaultdict
from typing import Any

import pytest

from services.plans.app import PlansApplication
from services.plans.document import document_of, render_html, render_pdf
from services.plans.texts import DEFAULT_LANGUAGE, LABELS, RIGHT_TO_LEFT, ROLES
from shared.events import ParticipantRole
from tests.unit.test_plans_rules import COORDINATOR, PLAN, content, held_case

LANGUAGES = ["nl", "en", "fy", "tr", "ar", "pl"]


def test_every_text_exists_in_every_language() -> None:
    assert sorted(LABELS) == sorted(LANGUAGES) == sorted(ROLES)
    keys = set(LABELS[DEFAULT_LANGUAGE])
    for language in LANGUAGES:
        assert set(LABELS[language]) == keys, language
        assert set(ROLES[language]) == {r.value for r in ParticipantRole}, language
        for key, text in LABELS[language].items():
            assert text.strip(), (language, key)
            # The same placeholders as the Dutch, so no copy prints a "{version}".
            wanted = set(re.findall(r"{(\w+)}", LABELS[DEFAULT_LANGUAGE][key]))
            assert set(re.findall(r"{(\w+)}", text)) == wanted, (language, key)


def written(app: PlansApplication, language: str, names: dict[str, str]) -> uuid.UUID:
    case_id = held_case(app, minimum=True, languages=[language])
    app.record_recipients(
        case_id, [{"participant_id": pid, "name": name} for pid, name in names.items()], COORDINATOR
    )
    agreements: list[dict[str, Any]] = [
        PLAN["agreements"][0] | {"answers": ["q1"]},
        *PLAN["agreements"][1:],
    ]
    app.write(case_id, content(agreements=agreements), COORDINATOR)
    return case_id


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_copy_prints_in_the_familys_language(make_app, language: str) -> None:
    app = make_app(PlansApplication)
    case_id = written(app, language, {"p-father": "Kees", "p-herman": "Herman"})
    document = document_of(app.get(case_id), 1)
    assert document.language == language and document.fallback_note is None
    html = render_html(document)
    labels = LABELS[language]
    assert f'<html lang="{language}"' in html
    assert ('dir="rtl"' in html) is (language in RIGHT_TO_LEFT)
    for key in ("title", "agreements", "minimum", "watched_by", "owned"):
        assert labels[key].replace("'", "&#39;") in html, (language, key)
    assert "Living with this man is not a solution." in html and "Kees" in html
    pdf = render_pdf(document)
    assert pdf.startswith(b"%PDF") and pdf == render_pdf(document_of(app.get(case_id), 1))


def pdf_streams(pdf: bytes) -> list[bytes]:
    found = []
    for match in re.finditer(rb"(?<!end)stream\r?\n", pdf):
        end = pdf.index(b"endstream", match.end())
        chunk = pdf[match.end() : end].rstrip(b"\r\n")
        try:
            found.append(zlib.decompress(chunk))
        except zlib.error:
            found.append(chunk)
    return found


def test_the_arabic_pdf_embeds_a_font_with_the_script_and_shapes_its_letters(make_app) -> None:
    app = make_app(PlansApplication)
    case_id = written(app, "ar", {"p-father": "كريم", "p-herman": "هرمان"})
    document = document_of(app.get(case_id), 1)
    assert document.direction == "rtl"
    html = render_html(document)
    assert '<html lang="ar" dir="rtl">' in html and "خطتنا" in html and "كريم" in html
    pdf = render_pdf(document)
    assert re.search(rb"/BaseFont /[A-Z]{6}\+DejaVuSans", pdf), "the font is not embedded"
    assert b"/FontFile2" in pdf
    # The text is there: the font's map back to Unicode names the letters of the copy.
    glyphs_of: dict[int, set[str]] = defaultdict(set)
    for stream in pdf_streams(pdf):
        for glyph, text in re.findall(rb"<([0-9A-F]{4})> <([0-9A-F]{4,})>", stream):
            char = chr(int(text[:4], 16))
            glyphs_of[ord(char)].add(glyph.decode())
    for letter in "خطتناكريم":
        assert ord(letter) in glyphs_of, f"{letter!r} is not in the PDF"
    # Shaped: Arabic letters take another form at the start, middle or end of a word, so one
    # letter is printed with more than one glyph. Unshaped text has one glyph per letter.
    arabic = {cp: g for cp, g in glyphs_of.items() if 0x0600 <= cp <= 0x06FF}
    assert any(len(glyphs) > 1 for glyphs in arabic.values()), "the Arabic is not shaped"


def test_an_unknown_language_asked_for_prints_in_dutch_and_says_which(make_app) -> None:
    app = make_app(PlansApplication)
    case_id = written(app, "nl", {"p-father": "Kees"})
    document = document_of(app.get(case_id), 1, "ku")
    assert document.language == "nl" and document.fallback_note is not None
    assert "Koerdisch, ku" in document.fallback_note
    assert document_of(app.get(case_id), 1, "xx-unknown").fallback_note is not None
    assert document_of(app.get(case_id), 1, "fy-NL").language == "fy"
