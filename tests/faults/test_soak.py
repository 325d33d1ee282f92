"""The soak's short form (``tests.faults.soak``; ``make soak`` runs the long one): sixteen cases
through the four service processes while each service is killed with -9 once, nats-server is
killed once, NATS stays away once and the stream loses its tail once; then nothing lost, nothing
twice on the stream, nothing applied twice, every follower's state as the stream says.

The seed is drawn and printed; ``KRING_SOAK_SEED=<seed>`` runs the same fault plan again.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.faults.soak import SERVICES, SoakConfig, run_soak


@pytest.mark.timeout(300)
async def test_faults_while_cases_flow_lose_nothing_and_apply_nothing_twice(
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("KRING_SOAK_SEED") or random.SystemRandom().randrange(1, 10**6))
    config = SoakConfig(cases=16, concurrency=4, seed=seed)
    figures = await run_soak(config, tmp_path)
    table = figures.table()
    print(table)
    checks = figures.checks

    assert figures.problems == [], table
    assert figures.final == config.cases, table
    wanted = {f"kill -9 {s}": 1 for s in SERVICES} | {
        "nats-server kill -9": 1,
        "NATS away": 1,
        "stream tail lost": 1,
    }
    assert figures.faults == wanted, table
    assert figures.faults_outside_flow == 0, table
    assert figures.probes == (1, 1), table  # stored while NATS was away
    assert checks.expected > 0 and checks.checked == checks.expected, table
    assert checks.lost == [], table
    assert checks.duplicated == [] and checks.unexpected == [], table
    removed, total = figures.republished
    assert total > 0 and removed == total, table
    assert checks.reactions_checked > 0, table
    assert checks.applied_twice == [] and checks.tracking_rows_twice == 0, table
    assert checks.missing == [] and checks.untracked == [], table
    assert set(checks.backlog.values()) == {0}, table
    assert checks.dead_letters == 0 and checks.dead_letters_wrong == [], table
    assert figures.ok, table
