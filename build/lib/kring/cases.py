"""``kring cases``: the merged case list (``shared.case_list``) as a table."""

from __future__ import annotations

from collections.abc import Sequence

from shared.case_list import STAGE_RANK, CaseRow, merge, select

__all__ = ["STAGE_RANK", "CaseRow", "merge", "select", "table"]


def table(cases: Sequence[CaseRow]) -> list[str]:
    lines = [f"{'case':<36}  {'model':<15} {'region':<12} {'stage':<26} coordinator"]
    for case in cases:
        stage = case.stage + (" (overdue)" if case.overdue else "")
        lines.append(
            f"{case.case_id:<36}  {case.model or '?':<15} {(case.region or '?')[:12]:<12} "
            f"{stage:<26} {', '.join(case.coordinator_ids) or '-'}"
        )
    return lines
