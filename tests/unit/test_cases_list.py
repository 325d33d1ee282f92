"""``kring cases`` and the console's board: rows of the four services merged into one stage per
case, filtered on the stage shown."""

import pytest
from typer.testing import CliRunner

from kring.cli import app
from shared.case_list import merge, select


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
    # The stage filtered on is the stage shown: a case coordination reports as conference_held
    # but followup took further is not listed under conference_held.
    assert [c.case_id for c in select(merged, stage="conference_held")] == []
    assert [c.case_id for c in select(merged, stage="waiting")] == ["a"]
    assert [c.case_id for c in select(merged, stage="accepted")] == []
    shown = {c.case_id: c.stage for c in merged}
    for stage in set(shown.values()):
        assert {c.case_id for c in select(merged, stage=stage)} == {
            case for case, at in shown.items() if at == stage
        }


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["audit", ""], "an empty case id is not a case id"),
        (["audit", "   "], "an empty case id is not a case id"),
        (["case", "not-a-case"], "'not-a-case' is not a case id"),
        (["access-log", "123"], "'123' is not a case id"),
        (["erase", "x/../../y", "--reason", "other"], "is not a case id"),
        (["cases", "--stage", "nonsense"], "no stage 'nonsense'; the stages are submitted"),
        (["cases", "--model", "big"], "no model 'big'; the models are family"),
        (["replay", "--case", ""], "error:"),
    ],
)
def test_an_ordinary_mistake_is_one_line_and_exit_code_2(args: list[str], said: str) -> None:
    # Nothing runs here: the mistake is found before any service is asked.
    result = CliRunner().invoke(app, args, env={"KRING_INTAKE_URL": "http://127.0.0.1:9"})
    assert result.exit_code == 2, result.output
    assert said in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["erase", "3f1c2b4e-0000-4000-8000-000000000000", "--reason", "bogus"], "'bogus'"),
        (["cases", "--bogus"], "No such option: --bogus"),
        (["audit"], "Missing argument"),
        (["nonsense"], "No such command 'nonsense'"),
        (["dlq", "replay", "abc"], "valid integer"),
    ],
)
def test_a_usage_mistake_is_one_line_and_exit_code_2_too(args: list[str], said: str) -> None:
    # As a user runs it (`kring` is kring.cli:main): not click's box of usage and help.
    import subprocess
    import sys

    ran = subprocess.run(
        [sys.executable, "-m", "kring.cli", *args], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 2, ran.stderr
    assert said in ran.stderr and ran.stderr.startswith("error: kring")
    assert len(ran.stderr.strip().splitlines()) == 1 and "Traceback" not in ran.stderr
