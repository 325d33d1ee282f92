"""The printable plan: one version as HTML (jinja2, autoescaped) and PDF (fpdf2), in the family's
language (``services.plans.texts``). Pure rendering from the aggregate's state; sending it is
the delivery worker's job.

Both formats are rendered from one ``PlanDocument``, so they never say different things.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from jinja2 import DictLoader, Environment, select_autoescape

from services.plans.domain import Plan, When
from services.plans.texts import DEFAULT_LANGUAGE, LABELS, RIGHT_TO_LEFT, ROLES

__all__ = ["DEFAULT_LANGUAGE", "LABELS", "document_of", "language_of", "render_html", "render_pdf"]


def _primary(code: str) -> str:
    return code.lower().replace("_", "-").split("-")[0]


def requested_language(plan: Plan, wanted: str | None = None) -> str:
    """``wanted``, else the family's language (the first one the request gave), as asked."""
    return _primary(wanted or (plan.languages[0] if plan.languages else DEFAULT_LANGUAGE))


def language_of(plan: Plan, wanted: str | None = None) -> str:
    """The language a copy prints in: the one asked for where Kring has text for it, else
    Dutch (and the copy says so)."""
    candidate = requested_language(plan, wanted)
    return candidate if candidate in LABELS else DEFAULT_LANGUAGE


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
class QuestionLines:
    label: str
    text: str
    #: "Agreements for this question: 1, 3", or None where none says it answers it.
    answered_by: str | None


@dataclass
class RequirementLines:
    text: str
    set_by: str
    signed_off: str | None


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
    #: ``rtl`` for Arabic, else ``ltr``.
    direction: str = "ltr"
    #: Said on the copy when it prints in Dutch because the language asked for has no texts.
    fallback_note: str | None = None
    questions: list[QuestionLines] = field(default_factory=list)
    requirements: list[RequirementLines] = field(default_factory=list)


def document_of(plan: Plan, version: int, language: str | None = None) -> PlanDocument:
    """What a copy of ``version`` says, with names as they may be printed now: a participant
    whose name was not given, or who withdrew consent to share their details, appears by role.
    The conference questions (each with the agreements that answer it) and the minimum
    requirements come from the clarification, as intake gave them to plans."""
    asked = requested_language(plan, language)
    lang = language_of(plan, language)
    labels, roles = LABELS[lang], ROLES[lang]
    written = plan.written_version(version)
    content = written["content"]

    def person(participant_id: str) -> str:
        known = plan.participants.get(participant_id)
        role = known.role if known else ""
        return plan.printed_name(participant_id) or roles.get(role, role)

    def when(value: When | None) -> str | None:
        if value is None:
            return None
        if value.on is not None:
            return _date(value.on, lang)
        return value.recurring

    written_on = _date(written["written_at"], lang)
    heading = [labels["version"].format(version=version, written=written_on)]
    if plan.held_on is not None:
        heading.append(labels["conference"].format(held=_date(plan.held_on, lang)))
    else:
        heading.append(labels["without_meeting"])
    sections = []
    if content.if_something_does_not_work:
        sections.append(Line(labels["if_not"], content.if_something_does_not_work))
    sections.append(Line(labels["watched_by"], person(content.watched_by)))
    if content.next_meeting_on:
        sections.append(Line(labels["next_meeting"], _date(content.next_meeting_on, lang)))
    questions = []
    for n, question in enumerate(plan.questions, start=1):
        numbers = [
            str(i)
            for i, a in enumerate(content.agreements, start=1)
            if question.question_id in a.answers
        ]
        questions.append(
            QuestionLines(
                label=labels["question_n"].format(n=n),
                text=question.text,
                answered_by=(
                    labels["answered_by"].format(numbers=", ".join(numbers)) if numbers else None
                ),
            )
        )
    requirements = []
    for requirement in plan.requirements:
        sign_off = plan.sign_off_of(version, requirement.requirement_id)
        by = requirement.set_by
        requirements.append(
            RequirementLines(
                text=requirement.text,
                set_by=labels["set_by"].format(who=f"{by.name} ({by.role}, {by.organisation})"),
                signed_off=(
                    labels["signed_off"].format(at=_date(sign_off["at"], lang))
                    if sign_off is not None and sign_off["meets"]
                    else None
                ),
            )
        )
    closing = []
    if not plan.requirements:
        # Signed off before plans knew the requirements' text: said as it always was.
        sign_off = plan.sign_off_of(version)
        if sign_off is not None and sign_off["meets"]:
            closing.append(labels["signed_off"].format(at=_date(sign_off["at"], lang)))
    closing.append(labels["owned"])
    fallback = None
    if asked != lang:
        fallback = LABELS[DEFAULT_LANGUAGE]["fallback"].format(language=_language_name(asked))
    return PlanDocument(
        language=lang,
        title=labels["title"],
        lines=heading,
        # A version written before the questions came from intake keeps the one it copied.
        question=content.question if not plan.questions else None,
        participants=[person(pid) for pid in plan.participants],
        agreements=[
            AgreementLines(
                who=", ".join(person(pid) for pid in a.who),
                what=a.what,
                where=a.where,
                when=when(a.when),
            )
            for a in content.agreements
        ],
        sections=sections,
        support=[f"{s.organisation}: {s.what}" for s in content.professional_support],
        closing=closing,
        labels=labels,
        written_at=written["written_at"],
        direction="rtl" if lang in RIGHT_TO_LEFT else "ltr",
        fallback_note=fallback,
        questions=questions,
        requirements=requirements,
    )


def _date(value: date | datetime, language: str) -> str:
    day = value.date() if isinstance(value, datetime) else value
    return str(format_date(day, format="long", locale=language))


def _language_name(code: str) -> str:
    """The language's name in Dutch, with its code ("Duits, de"); the code alone if unknown."""
    try:
        name = Locale.parse(code).get_display_name(DEFAULT_LANGUAGE)
    except (UnknownLocaleError, ValueError, TypeError):
        return code
    return f"{name}, {code}" if name else code


TEMPLATE = """<!doctype html>
<html lang="{{ doc.language }}" dir="{{ doc.direction }}">
<head><meta charset="utf-8"><title>{{ doc.title }}</title>
<style>
body { font-family: "DejaVu Sans", sans-serif; max-width: 42em; margin: 2em auto;
  line-height: 1.4; }
h1 { margin-bottom: 0.2em; } .meta { color: #555; margin: 0; }
li { margin-bottom: 0.6em; } dt { font-weight: bold; margin-top: 0.8em; }
.minimum { border: 2px solid #333; padding: 0.2em 1em; }
.note { font-style: italic; }
</style></head>
<body>
{% if doc.fallback_note %}<p class="note" lang="nl" dir="ltr">{{ doc.fallback_note }}</p>
{% endif %}
<h1>{{ doc.title }}</h1>
{% for line in doc.lines %}<p class="meta">{{ line }}</p>
{% endfor %}
{% if doc.questions %}<h2>{{ doc.labels.questions if doc.questions|length > 1
  else doc.labels.question }}</h2>
<ol class="questions">
{% for q in doc.questions %}<li><strong>{{ q.label }}</strong>: {{ q.text }}
{% if q.answered_by %}<br>{{ q.answered_by }}{% endif %}</li>
{% endfor %}
</ol>
{% elif doc.question %}<h2>{{ doc.labels.question }}</h2>
<p>{{ doc.question }}</p>
{% endif %}
{% if doc.requirements %}<section class="minimum">
<h2>{{ doc.labels.minimum }}</h2>
<p>{{ doc.labels.minimum_intro }}</p>
<ul>{% for m in doc.requirements %}<li><strong>{{ m.text }}</strong><br>{{ m.set_by }}
{% if m.signed_off %}<br>{{ m.signed_off }}{% endif %}</li>
{% endfor %}</ul>
</section>
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


#: The PDF's font: DejaVu Sans, which has Latin (Frisian, Turkish and Polish letters included)
#: and Arabic with its joining forms. It comes inside matplotlib's wheel (``mpl-data``), found
#: without importing matplotlib.
FONT_FAMILY = "DejaVuSans"
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}


@functools.cache
def font_folder() -> Path:
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("matplotlib (which ships the DejaVu fonts) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "fonts" / "ttf"


def render_pdf(document: PlanDocument) -> bytes:
    """The same copy as a PDF, in DejaVu Sans, shaped by HarfBuzz (fpdf2 with uharfbuzz), so
    Arabic letters join as they should; Arabic lines run from the right."""
    # Imported on first use: fpdf2 with fontTools is ~20 MB of a service that otherwise idles
    # at ~70 MB, and a PDF is rendered only when a copy is e-mailed or downloaded.
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_title(document.title)
    if document.written_at is not None:
        # The same version renders to the same bytes, whenever it is asked for.
        pdf.set_creation_date(document.written_at)
    for style, file in FONT_FILES.items():
        pdf.add_font(FONT_FAMILY, style, font_folder() / file)
    rtl = document.direction == "rtl"
    pdf.set_text_shaping(use_shaping_engine=True, direction="rtl" if rtl else "ltr")
    pdf.set_margins(20, 20, 20)
    pdf.add_page()
    align = "R" if rtl else "L"
    # fpdf2's line layout puts a leading dash of a right-to-left line on the wrong side: lists
    # in Arabic go without one.
    bullet = "" if rtl else "- "

    def text(value: str, size: int = 11, style: str = "", gap: float = 1.5) -> None:
        pdf.set_font(FONT_FAMILY, style=style, size=size)
        pdf.multi_cell(0, size * 0.5, value, align=align, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(gap)

    labels = document.labels
    if document.fallback_note:
        pdf.set_text_shaping(use_shaping_engine=True, direction="ltr")
        pdf.set_font(FONT_FAMILY, size=9)
        pdf.multi_cell(0, 4.5, document.fallback_note, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        pdf.set_text_shaping(use_shaping_engine=True, direction="rtl" if rtl else "ltr")
    text(document.title, size=20, style="B", gap=3)
    for line in document.lines:
        text(line, size=10, gap=0.5)
    pdf.ln(3)
    if document.questions:
        heading = labels["questions"] if len(document.questions) > 1 else labels["question"]
        text(heading, size=14, style="B")
        for question in document.questions:
            text(f"{question.label}: {question.text}", gap=0.5)
            if question.answered_by:
                text(question.answered_by, size=10, gap=0.5)
            pdf.ln(1.5)
    elif document.question:
        text(labels["question"], size=14, style="B")
        text(document.question)
    if document.requirements:
        text(labels["minimum"], size=14, style="B")
        text(labels["minimum_intro"], size=10)
        for requirement in document.requirements:
            text(requirement.text, style="B", gap=0.5)
            text(requirement.set_by, size=10, gap=0.5)
            if requirement.signed_off:
                text(requirement.signed_off, size=10, gap=0.5)
            pdf.ln(1.5)
    text(labels["participants"], size=14, style="B")
    for participant in document.participants:
        text(f"{bullet}{participant}", gap=0.5)
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
            text(f"{bullet}{support}", gap=0.5)
        pdf.ln(2)
    for line in document.closing:
        text(line, size=10)
    return bytes(pdf.output())
