"""docker-compose.yml run for real as local processes, its short form (``make soak`` runs the
long one): four cases, one per model, through follow-up while every service's active replica is
killed, the KRING stream's leader node stopped and PostgreSQL restarted; every case completes,
nothing lost, nothing applied twice, each takeover's time printed (tests/deploy/topology.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.topology import Plan, run


@pytest.mark.timeout(420)  # about two minutes alone; more while other work shares the cores
async def test_the_compose_topology_survives_its_faults_with_nothing_lost_or_applied_twice(
    tmp_path: Path,
) -> None:
    outcome = await run(Plan(cases=4), tmp_path / "topology")
    print("\n" + outcome.table())
    assert outcome.ok, outcome.table()
    assert {t.service for t in outcome.takeovers} == {"intake", "coordination", "plans", "followup"}
    # A takeover waits for the lease to run out (10 s by default), never much longer.
    assert all(t.seconds < 30 for t in outcome.takeovers), outcome.table()
    assert outcome.probes and "503" in outcome.probes[0]
