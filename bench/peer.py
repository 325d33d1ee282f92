"""Placeholder until the peer lands."""

from __future__ import annotations

from pathlib import Path

from bench.report import Report


def peer_bench(report: Report, work: Path, cases: int) -> None:
    report.note("peer not built yet")
