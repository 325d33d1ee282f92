"""The report's charts (matplotlib, without a display: the Agg backend), each as PNG bytes and
the number of values it shows, so an empty chart is known for what it is."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # before anything else of matplotlib: no display, ever

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from kring.analytics.figures import (
    AGREEMENT_RESULTS,
    RATING_GROUPS,
    REFERENCES,
    Answer,
    Figures,
)
from kring.analytics.texts import number, percent, text

#: Calm colours that stay apart for most colour-blind readers (Okabe and Ito).
BLUE, ORANGE, GREEN, RED, GREY, SKY, PURPLE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#999999",
    "#56B4E9",
    "#CC79A7",
)
OUTCOME_COLOURS = {
    "conference": BLUE,
    "plan_without_meeting": SKY,
    "stopped": ORANGE,
    "open": GREY,
}
DPI = 110


@dataclass(frozen=True)
class Chart:
    name: str
    lang: str
    title: str
    png: bytes
    #: How many values the chart shows (0: it says there is no data yet).
    values: int


def label(key: str, lang: str) -> str:
    return text({"group": "group_model"}.get(key, key), lang)


def _figure(width: float = 8.0, height: float = 4.0) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return figure


def _png(figure: Figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def _no_data(ax: Axes, lang: str) -> None:
    ax.text(0.5, 0.5, text("no_data", lang), ha="center", va="center", color=GREY, fontsize=14)
    ax.set_axis_off()


def _tidy(ax: Axes) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def funnel(f: Figures, lang: str) -> tuple[Figure, int]:
    figure = _figure(8, 4.2)
    ax = figure.subplots()
    steps = [label(step, lang) for step, _ in f.funnel]
    counts = [count for _, count in f.funnel]
    if not f.requests:
        _no_data(ax, lang)
        return figure, 0
    bars = ax.barh(steps[::-1], counts[::-1], color=BLUE)
    for bar, count in zip(bars, counts[::-1], strict=True):
        ax.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            f"  {count}  ({percent(count / f.requests, lang)})",
            va="center",
            fontsize=9,
        )
    ax.set_xlim(0, max(counts) * 1.3)
    ax.set_xlabel(text("cases", lang))
    _tidy(ax)
    return figure, len(counts)


def outcomes(f: Figures, lang: str) -> tuple[Figure, int]:
    figure = _figure(9, 4.2)
    left, right = figure.subplots(1, 2, width_ratios=[3, 2])
    if not f.requests:
        _no_data(left, lang)
        _no_data(right, lang)
        return figure, 0
    rows = [(text("ours", lang), {k: f.share(k) or 0.0 for k in OUTCOME_COLOURS})]
    rows.append(
        (
            f"{text('reference', lang)} 2023",
            {
                k: REFERENCES[k].value or 0.0
                for k in ("conference", "plan_without_meeting", "stopped")
            },
        )
    )
    for y, (name, shares) in enumerate(rows[::-1]):
        start = 0.0
        for key, colour in OUTCOME_COLOURS.items():
            share = shares.get(key, 0.0)
            if share <= 0:
                continue
            left.barh(name, share, left=start, color=colour, label=label(key, lang) if y else None)
            if share >= 0.07:
                left.text(start + share / 2, y, percent(share, lang), ha="center", va="center",
                          color="white", fontsize=9)  # fmt: skip
            start += share
    left.set_xlim(0, 1)
    left.xaxis.set_major_formatter(lambda v, _: percent(v, lang))
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False, fontsize=8)
    _tidy(left)
    reasons = f.stop_reasons.most_common()
    if reasons:
        right.barh([label(r, lang) for r, _ in reasons][::-1], [n for _, n in reasons][::-1],
                   color=ORANGE)  # fmt: skip
        right.set_title(text("why_stopped", lang), fontsize=10)
        right.xaxis.set_major_locator(MaxNLocator(integer=True))
        _tidy(right)
    else:
        _no_data(right, lang)
    return figure, len(OUTCOME_COLOURS) + len(reasons)


def lead_times(f: Figures, lang: str) -> tuple[Figure, int]:
    figure = _figure(10, 3.6)
    axes = figure.subplots(1, 3)
    shown = 0
    for ax, (key, spread) in zip(axes, f.lead_times.items(), strict=True):
        ax.set_title(text(key, lang), fontsize=10)
        if not spread.n:
            _no_data(ax, lang)
            continue
        shown += spread.n
        values = list(spread.values)
        # Within two days (a demo, an urgent case) in hours; otherwise in days.
        hours = max(values) < 2
        scale = 24 if hours else 1
        values = [v * scale for v in values]
        top = max(values)
        if key == "to_conference" and not hours:
            ax.axvspan(42, 70, color=GREEN, alpha=0.12, label=text("band_6_10_weeks", lang))
            ax.axvline(4, color=GREEN, linestyle=":", label=text("fastest_2023", lang))
            top = max(top, 70)
        # One unit per bar over three weeks (or 48 hours) or less, a week per bar beyond.
        step = 1 if top <= (48 if hours else 21) else 7
        bins = [step * i for i in range(int(top // step) + 2)]
        ax.hist(values, bins=bins, color=BLUE, edgecolor="white")
        median = (spread.median or 0) * scale
        ax.axvline(median, color=RED, linestyle="--",
                   label=f"{text('median', lang)} {number(median, lang)}")  # fmt: skip
        ax.set_xlabel(text("hours" if hours else "days", lang))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7, frameon=False)
        _tidy(ax)
    return figure, shown


def monthly(f: Figures, lang: str) -> tuple[Figure, int]:
    figure = _figure(9, 3.8)
    ax = figure.subplots()
    if not f.monthly:
        _no_data(ax, lang)
        return figure, 0
    months = list(f.monthly)
    series = (
        ("requests", BLUE, 0),
        ("conferences_held", GREEN, 1),
        ("plans_distributed", ORANGE, 2),
    )
    for key, colour, index in series:
        ax.plot(months, [f.monthly[m][index] for m in months], marker="o", color=colour,
                label=text(key, lang))  # fmt: skip
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    ax.legend(frameon=False, fontsize=8)
    _tidy(ax)
    return figure, len(months) * len(series)


def attendance(f: Figures, lang: str) -> tuple[Figure, int]:
    figure = _figure(9, 3.6)
    left, right = figure.subplots(1, 2)
    if not f.attended.n:
        _no_data(left, lang)
        _no_data(right, lang)
        return figure, 0
    top = int(max(f.attended.values))
    left.hist(f.attended.values, bins=range(0, top + 2), color=BLUE, align="left")
    left.axvline(f.attended.mean or 0, color=RED, linestyle="--",
                 label=f"{text('mean', lang)} {number(f.attended.mean, lang)}")  # fmt: skip
    left.axvline(9, color=GREEN, linestyle=":", label=text("published_9", lang))
    left.set_xlabel(text("people", lang))
    left.yaxis.set_major_locator(MaxNLocator(integer=True))
    left.legend(frameon=False, fontsize=8)
    _tidy(left)
    top_children = int(max(f.children.values))
    right.hist(f.children.values, bins=range(0, top_children + 2), color=PURPLE, align="left")
    right.set_xlabel(text("children_per_conference", lang))
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    _tidy(right)
    return figure, f.attended.n + f.children.n


def agreements(f: Figures, lang: str) -> tuple[Figure, int]:
    figure = _figure(8, 3.6)
    ax = figure.subplots()
    kinds = [k for k in f.agreements if k != "all" and f.agreements[k].total()]
    if not kinds:
        _no_data(ax, lang)
        return figure, 0
    colours = {"kept": GREEN, "partly_kept": ORANGE, "not_kept": RED}
    shown = 0
    for kind in kinds:
        counts = f.agreements[kind]
        total = counts.total()
        start = 0.0
        for result in AGREEMENT_RESULTS:
            share = counts[result] / total
            shown += counts[result] > 0
            ax.barh(label(kind, lang), share, left=start, color=colours[result],
                    label=label(result, lang) if kind == kinds[0] else None)  # fmt: skip
            if share >= 0.08:
                ax.text(start + share / 2, kinds.index(kind), f"{counts[result]}",
                        ha="center", va="center", color="white", fontsize=9)  # fmt: skip
            start += share
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(lambda v, _: percent(v, lang))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, frameon=False, fontsize=8)
    _tidy(ax)
    return figure, shown


def ratings(f: Figures, lang: str) -> tuple[Figure, int]:
    figure = _figure(8, 3.8)
    ax = figure.subplots()
    keys = [(group, what) for group in RATING_GROUPS for what in ("meeting", "plan")]
    if not any(f.ratings[key].n for key in keys):
        _no_data(ax, lang)
        return figure, 0
    names = [f"{label(group, lang)}\n{label(what, lang)}" for group, what in keys]
    ours = [f.ratings[key].mean or 0 for key in keys]
    published = [REFERENCES[f"{group}:{what}"].value or 0 for group, what in keys]
    positions = range(len(keys))
    width = 0.38
    bars = ax.bar([p - width / 2 for p in positions], ours, width, color=BLUE,
                  label=text("ours", lang))  # fmt: skip
    ax.bar([p + width / 2 for p in positions], published, width, color=GREY,
           label=f"{text('reference', lang)} 2023")  # fmt: skip
    for bar, key in zip(bars, keys, strict=True):
        spread = f.ratings[key]
        if spread.n:
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(),
                    f"{number(spread.mean, lang)}\n(n={spread.n})", ha="center", va="bottom",
                    fontsize=8)  # fmt: skip
    ax.set_xticks(list(positions), names, fontsize=8)
    ax.set_ylim(0, 11)
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    _tidy(ax)
    return figure, sum(f.ratings[key].n for key in keys)


def follow_up(f: Figures, lang: str) -> tuple[Figure, int]:
    figure = _figure(8, 3.4)
    ax = figure.subplots()
    reached, contacts = f.contacts.get("all", (0, 0))
    distributed = dict(f.funnel).get("plan_distributed", 0)
    bars = [
        (text("plans_distributed", lang), distributed, BLUE),
        (text("follow_up_contacts_reached", lang), contacts, SKY),
        (text("reached", lang), reached, GREEN),
        (text("follow_up_conferences", lang), f.follow_up_conferences_requested, PURPLE),
        (text("requests_for_a_follow_up", lang), f.requests_for_a_follow_up, ORANGE),
    ]
    if not any(value for _, value, _ in bars):
        _no_data(ax, lang)
        return figure, 0
    drawn = ax.barh([name for name, _, _ in bars][::-1], [v for _, v, _ in bars][::-1],
                    color=[c for _, _, c in bars][::-1])  # fmt: skip
    for bar in drawn:
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f"  {int(bar.get_width())}",
                va="center", fontsize=9)  # fmt: skip
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _tidy(ax)
    return figure, sum(1 for _, value, _ in bars if value)


def groups(answer: Answer, lang: str) -> tuple[Figure, int]:
    names = list(answer.groups)
    figure = _figure(9, max(2.5, 0.45 * len(names) + 1.5))
    ax = figure.subplots()
    if not names:
        _no_data(ax, lang)
        return figure, 0
    for y, name in enumerate(names):
        f = answer.groups[name]
        start = 0.0
        for key, colour in OUTCOME_COLOURS.items():
            share = f.share(key) or 0.0
            ax.barh(label(name, lang), share, left=start, color=colour,
                    label=label(key, lang) if y == 0 else None)  # fmt: skip
            start += share
        ax.text(1.01, y, f"n={f.requests}", va="center", fontsize=8)
    ax.set_xlim(0, 1.1)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(lambda v, _: percent(v, lang) if v <= 1 else "")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=4, frameon=False, fontsize=8)
    _tidy(ax)
    return figure, len(names)


DRAWINGS: tuple[tuple[str, Callable[[Figures, str], tuple[Figure, int]]], ...] = (
    ("funnel", funnel),
    ("outcomes", outcomes),
    ("lead_times", lead_times),
    ("monthly", monthly),
    ("attendance", attendance),
    ("agreements", agreements),
    ("ratings", ratings),
    ("follow_up", follow_up),
)


def draw_all(answer: Answer, lang: str) -> list[Chart]:
    charts = []
    for name, draw in DRAWINGS:
        figure, values = draw(answer.overall, lang)
        charts.append(Chart(name, lang, text(f"chart_{name}", lang), _png(figure), values))
    if answer.by is not None:
        figure, values = groups(answer, lang)
        charts.append(Chart("groups", lang, text("chart_groups", lang), _png(figure), values))
    return charts
