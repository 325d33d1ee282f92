"""Follow-up's configuration: the schedule per model from JSON, compressed days, the reminder;
a malformed schedule stops the service at start with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.followup.domain import DEFAULT_CONTACTS, Contact
from services.followup.settings import FollowupSettings

ROOT = Path(__file__).resolve().parents[2]


def test_the_schedule_is_read_per_model_and_models_not_named_keep_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "KRING_FOLLOWUP_SCHEDULE",
        '{"restorative": [{"kind": "research", "after_days": 365},'
        ' {"kind": "coordinator_call", "after_days": 14.5}]}',
    )
    monkeypatch.setenv("KRING_FOLLOWUP_SECONDS_PER_DAY", "0.2")
    monkeypatch.setenv("KRING_FOLLOWUP_REMINDER_DAYS_BEFORE", "3")
    schedule = FollowupSettings().followup_schedule()
    assert schedule.contacts_for("restorative") == [
        Contact("coordinator_call", 14.5),
        Contact("research", 365),
    ]
    assert schedule.contacts_for("family") == list(DEFAULT_CONTACTS)
    assert (schedule.seconds_per_day, schedule.reminder_days_before) == (0.2, 3)


def test_without_configuration_every_model_has_the_call_at_four_weeks_and_research_at_91_days(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("SCHEDULE", "SECONDS_PER_DAY", "REMINDER_DAYS_BEFORE"):
        monkeypatch.delenv(f"KRING_FOLLOWUP_{name}", raising=False)
    schedule = FollowupSettings().followup_schedule()
    for model in ("family", "group", "restorative", "learning_circle"):
        assert schedule.contacts_for(model) == [
            Contact("coordinator_call", 28),
            Contact("research", 91),
        ]
    assert (schedule.seconds_per_day, schedule.reminder_days_before) == (86_400, 7)


@pytest.mark.parametrize(
    "value",
    [
        "{not json",
        '[{"kind": "research", "after_days": 91}]',
        '{"tribunal": [{"kind": "research", "after_days": 91}]}',
        '{"family": []}',
        '{"family": [{"kind": "research", "after_days": -1}]}',
        '{"family": [{"kind": "research"}]}',
        '{"family": [{"kind": "Research call", "after_days": 91}]}',
        '{"family": [{"kind": "next_meeting_reminder", "after_days": 91}]}',
        '{"family": [{"kind": "research", "after_days": 91, "by": "someone"}]}',
    ],
)
def test_a_malformed_schedule_is_refused_naming_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KRING_FOLLOWUP_SCHEDULE", value)
    with pytest.raises(ValidationError) as refused:
        FollowupSettings()
    assert "KRING_FOLLOWUP_SCHEDULE" in str(refused.value)


def test_the_service_does_not_start_on_a_malformed_schedule_and_says_why(tmp_path: Path) -> None:
    env = os.environ | {"KRING_FOLLOWUP_SCHEDULE": "{not json", "KRING_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "services.followup.main"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 78  # a setting: starting again will not help
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("cannot start: KRING_FOLLOWUP_SCHEDULE: ")
    assert "not JSON" in line
