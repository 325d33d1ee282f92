"""Figures, their ratios to the baselines measured in the same run, and the targets of issue 4."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Figure:
    key: str
    label: str
    value: float
    unit: str
    #: Key of the figure this one is compared with, and the ratio value / baseline.
    baseline: str | None = None
    ratio: float | None = None
    target: str | None = None
    met: bool | None = None

    def line(self) -> str:
        value = f"{self.value:,.1f}" if self.value < 100 else f"{self.value:,.0f}"
        ratio = f"x{self.ratio:.2f} of {self.baseline}" if self.ratio is not None else ""
        verdict = "" if self.met is None else ("met" if self.met else "MISSED")
        target = f"target {self.target}: {verdict}" if self.target else ""
        return f"  {self.label:<52} {value:>10} {self.unit:<9} {ratio:<40} {target}"


@dataclass
class Report:
    figures: dict[str, Figure] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(
        self,
        key: str,
        label: str,
        value: float,
        unit: str,
        *,
        baseline: str | None = None,
        target: str | None = None,
        met: bool | None = None,
        quiet: bool = False,
    ) -> Figure:
        ratio = None
        if baseline is not None and baseline in self.figures and self.figures[baseline].value:
            ratio = value / self.figures[baseline].value
        figure = Figure(key, label, value, unit, baseline, ratio, target, met)
        self.figures[key] = figure
        if not quiet:
            print(figure.line(), flush=True)
        return figure

    def value(self, key: str) -> float | None:
        figure = self.figures.get(key)
        return figure.value if figure else None

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def targets(self) -> list[Figure]:
        return [f for f in self.figures.values() if f.target]

    def print_summary(self) -> None:
        print("\n== targets (issue 4) ==")
        for figure in self.targets():
            print(figure.line())
        missed = [f for f in self.targets() if f.met is False]
        print(f"\n{len(self.targets()) - len(missed)} met, {len(missed)} missed")

    def write_json(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {"figures": [asdict(f) for f in self.figures.values()], "notes": self.notes},
                indent=2,
            ),
            encoding="utf-8",
        )


def section(title: str) -> None:
    print(f"\n== {title} ==", flush=True)
