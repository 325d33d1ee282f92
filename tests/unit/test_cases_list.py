"""``kring cases``: rows of the four services merged into one stage per case."""

from kring.cases import merge, select


def test_a_case_takes_the_stage_of_the_service_that_took_it_furthest() -> None:
    rows = {
        "intake": [
            {"case_id": "a", "model": "family", "region": "Utrecht", "stage": "accepted"},
            {"case_id": "b", "model": "group", "region": "Zeeland", "stage": "accepted"},
            {"case_id": "c", "model": "family", "region": "Utrecht", "stage": "withdrawn"},
            {"case_id": "d", "model": "restorative", "region": "Utrecht", "stage": "clarified"},
        ],
        "coordination": [
            {
                "case_id": "a",
                "model": "family",
                "stage": "conference_held",
                "coordinator_ids": ["c1"],
                "overdue": False,
            },
            {
                "case_id": "b",
                "model": "group",
                "stage": "coordinator_assigned",
                "coordinator_ids": ["c2", "c3"],
                "overdue": True,
            },
            {"case_id": "c", "model": "family", "stage": "stopped", "coordinator_ids": []},
        ],
        "plans": [
            {"case_id": "a", "model": "family", "stage": "plan_distributed"},
            {"case_id": "b", "model": "group", "stage": "awaiting_conference"},
            {"case_id": "c", "model": "family", "stage": "stopped"},
        ],
        "followup": [{"case_id": "a", "model": "family", "stage": "waiting"}],
    }
    cases = {c.case_id: c for c in merge(rows)}
    assert (cases["a"].stage, cases["a"].stage_service) == ("waiting", "followup")
    assert cases["b"].stage == "coordinator_assigned"  # plans merely heard of it
    assert cases["c"].stage in ("withdrawn", "stopped")
    assert cases["d"].stage == "clarified"
    assert cases["a"].region == "Utrecht"

    merged = merge(rows)
    assert [c.case_id for c in select(merged, overdue=True)] == ["b"]
    assert [c.case_id for c in select(merged, coordinator="c3")] == ["b"]
    assert [c.case_id for c in select(merged, model="family", region="utrecht")] == ["a", "c"]
    # A stage matches the case's own stage or the stage any service reports.
    assert [c.case_id for c in select(merged, stage="conference_held")] == ["a"]
    assert [c.case_id for c in select(merged, stage="waiting")] == ["a"]
