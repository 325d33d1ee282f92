"""The printable plan: one version as HTML (jinja2, autoescaped) and PDF (fpdf2), in the family's
language. Pure rendering from the aggregate's state; sending it is the delivery worker's job.

Both formats are rendered from one ``PlanDocument``, so they never say different things.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from jinja2 import DictLoader, Environment, select_autoescape

from services.plans.domain import Plan

DEFAULT_LANGUAGE = "nl"

LABELS: dict[str, dict[str, str]] = {
    "nl": {
        "title": "Ons plan",
        "version": "Versie {version}, opgeschreven op {written}",
        "conference": "Conferentie gehouden op {held}",
        "without_meeting": "Plan gemaakt zonder bijeenkomst",
        "question": "De vraag",
        "participants": "Wie deden er mee",
        "agreements": "Afspraken",
        "who": "Wie",
        "what": "Wat",
        "where": "Waar",
        "when": "Wanneer",
        "if_not": "Als iets niet lukt",
        "watched_by": "Wie let erop dat de afspraken worden nagekomen",
        "next_meeting": "We komen weer bij elkaar op",
        "support": "Hulp van professionals die de familie koos",
        "signed_off": "Een professional heeft op {at} vastgesteld dat dit plan aan de"
        " minimumeis voldoet.",
        "owned": "Dit plan is van iedereen die het maakte. Iedere deelnemer krijgt een kopie.",
        "mail_subject": "Jullie plan (versie {version})",
        "mail_text": "In de bijlage staat het plan dat jullie samen hebben gemaakt"
        " (versie {version}).\n\nMet vriendelijke groet,\nde coördinator",
    },
    "en": {
        "title": "Our plan",
        "version": "Version {version}, written up on {written}",
        "conference": "Conference held on {held}",
        "without_meeting": "Plan made without a meeting",
        "question": "The question",
        "participants": "Who took part",
        "agreements": "Agreements",
        "who": "Who",
        "what": "What",
        "where": "Where",
        "when": "When",
        "if_not": "If something does not work",
        "watched_by": "Who watches that the agreements are kept",
        "next_meeting": "We meet again on",
        "support": "Professional support the family chose",
        "signed_off": "On {at} a professional confirmed that this plan meets the minimum"
        " requirement.",
        "owned": "This plan belongs to everyone who made it. Every participant gets a copy.",
        "mail_subject": "Your plan (version {version})",
        "mail_text": "Attached is the plan you made together (version {version}).\n\n"
        "Kind regards,\nyour coordinator",
    },
}

ROLES: dict[str, dict[str, str]] = {
    "nl": {
        "central_person": "centrale persoon",
        "family": "familielid",
        "network": "iemand uit het netwerk",
        "child": "kind",
        "professional": "professional",
        "expert": "deskundige",
        "victim": "slachtoffer",
        "offender": "dader",
        "pupil": "leerling",
        "teacher": "leerkracht",
    },
    "en": {
        "central_person": "central person",
        "family": "family member",
        "network": "someone from the network",
        "child": "child",
        "professional": "professional",
        "expert": "expert",
        "victim": "victim",
        "offender": "offender",
        "pupil": "pupil",
        "teacher": "teacher",
    },
}


def language_of(plan: Plan, wanted: str | None = None) -> str:
    """``wanted``, else the family's language (the first one the request gave); anything Kring
    has no text for falls back to Dutch."""
    candidate = wanted or (plan.languages[0] if plan.languages else "")
    primary = candidate.lower().replace("_", "-").split("-")[0]
    return primary if primary in LABELS else DEFAULT_LANGUAGE


@dataclass
class Line:
    label: str
    text: str


@dataclass
class AgreementLines:
    who: str
    what: str
    where: str | None
    when: str | None


@dataclass
class PlanDocument:
    language: str
    title: str
    lines: list[str]
    question: str | None
    participants: list[str]
    agreements: list[AgreementLines]
    sections: list[Line] = field(default_factory=list)
    support: list[str] = field(default_factory=list)
    closing: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    written_at: datetime | None = None


def document_of(plan: Plan, version: int, language: str | None = None) -> PlanDocument:
    """What a copy of ``version`` says, with names as they may be printed now: a participant
    whose name was not given, or who withdrew consent to share their details, appears by role."""
    lang = language_of(plan, language)
    labels, roles = LABELS[lang], ROLES[lang]
    written = plan.written_version(version)
    content: dict[str, Any] = written["content"]

    def person(participant_id: str) -> str:
        role = plan.participants.get(participant_id, {}).get("role") or ""
        return plan.printed_name(participant_id) or roles.get(role, role)

    def when(value: dict[str, Any] | None) -> str | None:
        if not value:
            return None
        if value.get("on"):
            return _date(date.fromisoformat(value["on"]), lang)
        return str(value.get("recurring")) if value.get("recurring") else None

    written_on = _date(written["written_at"], lang)
    heading = [labels["version"].format(version=version, written=written_on)]
    if plan.held_on is not None:
        heading.append(labels["conference"].format(held=_date(plan.held_on, lang)))
    else:
        heading.append(labels["without_meeting"])
    sections = []
    if content.get("if_something_does_not_work"):
        sections.append(Line(labels["if_not"], content["if_something_does_not_work"]))
    sections.append(Line(labels["watched_by"], person(content["watched_by"])))
    if content.get("next_meeting_on"):
        next_meeting = date.fromisoformat(content["next_meeting_on"])
        sections.append(Line(labels["next_meeting"], _date(next_meeting, lang)))
    closing = []
    sign_off = plan.sign_off_of(version)
    if sign_off is not None and sign_off["meets"]:
        closing.append(labels["signed_off"].format(at=_date(sign_off["at"], lang)))
    closing.append(labels["owned"])
    return PlanDocument(
        language=lang,
        title=labels["title"],
        lines=heading,
        question=content.get("question"),
        participants=[person(pid) for pid in plan.participants],
        agreements=[
            AgreementLines(
                who=", ".join(person(pid) for pid in a["who"]),
                what=a["what"],
                where=a.get("where"),
                when=when(a.get("when")),
            )
            for a in content["agreements"]
        ],
        sections=sections,
        support=[
            f"{s['organisation']}: {s['what']}" for s in content.get("professional_support", [])
        ],
        closing=closing,
        labels=labels,
        written_at=written["written_at"],
    )


MONTHS = {
    "nl": "januari februari maart april mei juni juli augustus september oktober november december",
    "en": "January February March April May June July August September October November December",
}


def _date(value: date | datetime, language: str) -> str:
    return f"{value.day} {MONTHS[language].split()[value.month - 1]} {value.year}"


TEMPLATE = """<!doctype html>
<html lang="{{ doc.language }}">
<head><meta charset="utf-8"><title>{{ doc.title }}</title>
<style>
body { font-family: sans-serif; max-width: 42em; margin: 2em auto; line-height: 1.4; }
h1 { margin-bottom: 0.2em; } .meta { color: #555; margin: 0; }
li { margin-bottom: 0.6em; } dt { font-weight: bold; margin-top: 0.8em; }
</style></head>
<body>
<h1>{{ doc.title }}</h1>
{% for line in doc.lines %}<p class="meta">{{ line }}</p>
{% endfor %}
{% if doc.question %}<h2>{{ doc.labels.question }}</h2>
<p>{{ doc.question }}</p>
{% endif %}
<h2>{{ doc.labels.participants }}</h2>
<ul>{% for p in doc.participants %}<li>{{ p }}</li>{% endfor %}</ul>
<h2>{{ doc.labels.agreements }}</h2>
<ol>
{% for a in doc.agreements %}<li><strong>{{ a.who }}</strong>: {{ a.what }}
{% if a.where %}<br>{{ doc.labels.where }}: {{ a.where }}{% endif %}
{% if a.when %}<br>{{ doc.labels.when }}: {{ a.when }}{% endif %}</li>
{% endfor %}
</ol>
<dl>
{% for s in doc.sections %}<dt>{{ s.label }}</dt><dd>{{ s.text }}</dd>
{% endfor %}
</dl>
{% if doc.support %}<h2>{{ doc.labels.support }}</h2>
<ul>{% for s in doc.support %}<li>{{ s }}</li>{% endfor %}</ul>
{% endif %}
{% for line in doc.closing %}<p>{{ line }}</p>
{% endfor %}
</body>
</html>
"""

_templates = Environment(
    loader=DictLoader({"plan.html": TEMPLATE}),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def render_html(document: PlanDocument) -> str:
    return _templates.get_template("plan.html").render(doc=document)


def render_pdf(document: PlanDocument) -> bytes:
    # Imported on first use: fpdf2 with fontTools is ~20 MB of a service that otherwise idles
    # at ~70 MB, and a PDF is rendered only when a copy is e-mailed or downloaded.
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_title(document.title)
    if document.written_at is not None:
        # The same version renders to the same bytes, whenever it is asked for.
        pdf.set_creation_date(document.written_at)
    pdf.set_margins(20, 20, 20)
    pdf.add_page()

    def text(value: str, size: int = 11, style: str = "", gap: float = 1.5) -> None:
        pdf.set_font("Helvetica", style=style, size=size)
        pdf.multi_cell(0, size * 0.5, _printable(value), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(gap)

    labels = document.labels
    text(document.title, size=20, style="B", gap=3)
    for line in document.lines:
        text(line, size=10, gap=0.5)
    pdf.ln(3)
    if document.question:
        text(labels["question"], size=14, style="B")
        text(document.question)
    text(labels["participants"], size=14, style="B")
    for participant in document.participants:
        text(f"- {participant}", gap=0.5)
    pdf.ln(2)
    text(labels["agreements"], size=14, style="B")
    for number, agreement in enumerate(document.agreements, start=1):
        text(f"{number}. {agreement.who}: {agreement.what}", gap=0.5)
        if agreement.where:
            text(f"   {labels['where']}: {agreement.where}", gap=0.5)
        if agreement.when:
            text(f"   {labels['when']}: {agreement.when}", gap=0.5)
        pdf.ln(1.5)
    for section in document.sections:
        text(section.label, size=12, style="B", gap=0.5)
        text(section.text)
    if document.support:
        text(labels["support"], size=12, style="B", gap=0.5)
        for support in document.support:
            text(f"- {support}", gap=0.5)
        pdf.ln(2)
    for line in document.closing:
        text(line, size=10)
    return bytes(pdf.output())


#: Typographic characters outside Latin-1, and letters NFKD does not reduce to a Latin-1 one.
_PLAIN = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
        "\u2022": "-",
        "\u20ac": "EUR",
        "\u0142": "l",
        "\u0141": "L",
        "\u0111": "d",
        "\u0110": "D",
        "\u0131": "i",
        "\u0153": "oe",
        "\u0152": "OE",
    }
)


def _printable(value: str) -> str:
    """The PDF's built-in font covers Latin-1 only: keep what it can print, reduce accented
    letters outside it to their base letter, and print '?' for the rest (the HTML copy prints
    every script)."""
    out = []
    for char in value.translate(_PLAIN):
        if _latin1(char):
            out.append(char)
            continue
        base = "".join(
            c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
        )
        out.append(base if base and all(_latin1(c) for c in base) else "?")
    return "".join(out)


def _latin1(char: str) -> bool:
    try:
        char.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True
