"""``kring report``: the field's questions as one self-contained HTML page, with its charts beside
it as PNG files.

The page reads at a glance: key figures with the published ones beside them, then one chart per
question, Dutch first with English a click away (both are in the page; nothing is fetched from
anywhere). ``report.html`` gets ``report-funnel.png`` and its siblings (``.en.png`` in English)
in the same folder. Everything is written under temporary names first and renamed into place, so
a report is whole or not there.

It reads the stream itself, not an export: the stream is the whole record and needs no key, so
a report is the same whoever makes it, for any window, and an erasure counts the moment it is
on the stream; an export is one analyst's pseudonymised copy, for their own tools. Both fold the
events the same way (``kring.analytics.facts``), so their counts agree.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment

from kring.analytics.charts import Chart, draw_all, label
from kring.analytics.facts import Fold
from kring.analytics.figures import (
    REFERENCES,
    SOURCES,
    Answer,
    Collected,
    Figures,
    GroupBy,
    answer,
)
from kring.analytics.page import PAGE
from kring.analytics.stream import StreamRead, read_stream, stream_state, young_collections_only
from kring.analytics.texts import LANGUAGES, number, percent, text


class ReportError(Exception):
    """An option or a place to write that cannot be used, said in one line (exit code 2)."""


@dataclass(frozen=True)
class ReportRequest:
    out: Path
    since: datetime | None = None
    until: datetime | None = None
    by: GroupBy | None = None

    def check(self) -> None:
        for moment in (self.since, self.until):
            if moment is not None and moment.tzinfo is None:
                raise ReportError("give times with a zone, e.g. 2026-03-01T00:00:00+01:00")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ReportError(
                f"--since ({self.since.isoformat()}) is not before --until"
                f" ({self.until.isoformat()})"
            )
        if self.out.suffix.lower() not in (".html", ".htm"):
            raise ReportError(f"--out {self.out} should name an .html file")
        folder = self.out.parent
        if not folder.is_dir():
            raise ReportError(f"cannot write {self.out}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise ReportError(f"cannot write {self.out}: the folder {folder} is not writable")


@dataclass(frozen=True)
class Written:
    html: Path
    pngs: list[Path]
    charts: list[Chart]
    answer: Answer
    read: StreamRead


async def make_report(connection: Any, request: ReportRequest) -> Written:
    request.check()
    collected = Collected()
    fold = Fold(key=str, sink=collected)
    stream = await stream_state(connection)
    with young_collections_only():
        read = await read_stream(connection, after=0, until=stream.last, on_event=fold.fold)
        found = answer(fold, collected, since=request.since, until=request.until, by=request.by)
    return write_report(found, request, read)


def write_report(found: Answer, request: ReportRequest, read: StreamRead) -> Written:
    charts = [chart for lang in LANGUAGES for chart in draw_all(found, lang)]
    stem = request.out.stem
    folder = request.out.parent
    pngs: list[Path] = []
    staged: list[tuple[Path, Path]] = []
    try:
        for chart in charts:
            name = (
                f"{stem}-{chart.name}.png" if chart.lang == "nl" else f"{stem}-{chart.name}.en.png"
            )
            final = folder / name
            staged.append((_stage(final, chart.png), final))
            pngs.append(final)
        page = render(found, charts, read)
        staged.append((_stage(request.out, page.encode("utf-8")), request.out))
    except OSError as error:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        raise ReportError(f"cannot write {request.out}: {error.strerror or error}") from None
    for temporary, final in staged:  # the page last: it is there only when its charts are
        os.replace(temporary, final)
    return Written(html=request.out, pngs=pngs, charts=charts, answer=found, read=read)


def _stage(final: Path, content: bytes) -> Path:
    temporary = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    with temporary.open("wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())
    return temporary


# -- the page -----------------------------------------------------------------------------
def key_figures(f: Figures, lang: str) -> list[dict[str, str]]:
    """The table at the top: our figure, the published one, where it comes from."""
    conference = f.lead_times["to_conference"]
    kept = f.agreements.get("all")
    kept_total = sum(kept.values()) if kept else 0

    def ref(key: str) -> tuple[str, str]:
        found = REFERENCES.get(key)
        return (getattr(found, lang), found.source) if found else (text("no_reference", lang), "")

    rows: list[tuple[str, str, tuple[str, str]]] = [
        ("requests", str(f.requests), (text("no_reference", lang), "")),
        ("share_conference", _share(f, "conference", lang), ref("conference")),
        (
            "share_plan_without_meeting",
            _share(f, "plan_without_meeting", lang),
            ref("plan_without_meeting"),
        ),
        ("share_stopped", _share(f, "stopped", lang), ref("stopped")),
        ("share_open", _share(f, "open", lang), (text("no_reference", lang), "")),
        (
            "median_to_conference",
            f"{number(conference.median, lang, 0)}; {number(conference.minimum, lang, 0)}",
            ref("fastest_to_conference"),
        ),
        (
            "within_6_10_weeks",
            percent(conference.share_between(42, 70), lang),
            ref("weeks_to_conference"),
        ),
        ("mean_attended", number(f.attended.mean, lang), ref("attended")),
        (
            "children_attended",
            f"{f.conferences_with_children} / {f.attended.n}",
            ref("children"),
        ),
        (
            "agreements_kept",
            " / ".join(
                percent(kept[r] / kept_total, lang) if kept and kept_total else "\u2014"
                for r in ("kept", "partly_kept", "not_kept")
            ),
            ref("agreements"),
        ),
        (
            "rating_family_meeting",
            _mark(f, "family_network", "meeting", lang),
            ref("family_network:meeting"),
        ),
        (
            "rating_family_plan",
            _mark(f, "family_network", "plan", lang),
            ref("family_network:plan"),
        ),
        (
            "rating_professional_meeting",
            _mark(f, "professional", "meeting", lang),
            ref("professional:meeting"),
        ),
        (
            "rating_professional_plan",
            _mark(f, "professional", "plan", lang),
            ref("professional:plan"),
        ),
        (
            "follow_up_conferences",
            str(f.follow_up_conferences_requested),
            (text("no_reference", lang), ""),
        ),
    ]
    sources = list(SOURCES)
    return [
        {
            "figure": text(key, lang),
            "ours": ours,
            "reference": reference,
            "source": f"[{sources.index(source) + 1}]" if source else "",
        }
        for key, ours, (reference, source) in rows
    ]


def group_rows(found: Answer, lang: str) -> list[dict[str, str]]:
    return [
        {
            "group": label(name, lang),
            "requests": str(f.requests),
            "conference": _share(f, "conference", lang),
            "plan_without_meeting": _share(f, "plan_without_meeting", lang),
            "stopped": _share(f, "stopped", lang),
            "median": number(f.lead_times["to_conference"].median, lang, 0),
            "attended": number(f.attended.mean, lang),
            "family_network": _mark(f, "family_network", "plan", lang),
            "professional": _mark(f, "professional", "plan", lang),
        }
        for name, f in found.groups.items()
    ]


def _share(f: Figures, outcome: str, lang: str) -> str:
    return f"{percent(f.share(outcome), lang)} ({f.outcomes[outcome]})"


def _mark(f: Figures, group: str, what: str, lang: str) -> str:
    spread = f.ratings[(group, what)]
    return f"{number(spread.mean, lang)} (n={spread.n})" if spread.n else "\u2014"


def render(found: Answer, charts: list[Chart], read: StreamRead) -> str:
    environment = Environment(autoescape=True)
    template = environment.from_string(PAGE)
    pages = {}
    for lang in LANGUAGES:
        window = text("all_time", lang)
        if found.since or found.until:
            window = " ".join(
                part
                for part in (
                    f"{text('from', lang)} {found.since:%Y-%m-%d}" if found.since else "",
                    f"{text('until', lang)} {found.until:%Y-%m-%d}" if found.until else "",
                )
                if part
            )
        pages[lang] = {
            "t": lambda key, lang=lang: text(key, lang),
            "window": window,
            "made": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "last_event": f"{found.last_event_at:%Y-%m-%d %H:%M}" if found.last_event_at else "-",
            "figures": key_figures(found.overall, lang),
            "charts": [
                {
                    "name": c.name,
                    "title": c.title,
                    "src": "data:image/png;base64," + base64.b64encode(c.png).decode("ascii"),
                }
                for c in charts
                if c.lang == lang
            ],
            "by": text(f"by_{found.by.value}", lang) if found.by else None,
            "groups": group_rows(found, lang),
            "sources": [source[lang] for source in SOURCES.values()],
        }
    return template.render(
        pages=pages,
        languages=LANGUAGES,
        events=found.events,
        read=read.read,
        erased=found.erased,
        without_request=found.without_request,
        undecodable=sum(read.undecodable.values()),
    )
