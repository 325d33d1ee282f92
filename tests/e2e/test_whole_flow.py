"""The whole system as ``make run`` starts it (nats-server and four service processes), one
case walked through by ``kring demo``, checked on the real stream and with ``kring audit``."""

from __future__ import annotations

import json
import subprocess
import sys

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from kring.client import Who
from tests.e2e.conftest import SERVICES, System
from tests.e2e.test_models import FLOW, in_order
from tests.harness import stream_messages
from tests.servers import free_port


async def test_one_case_travels_the_whole_flow(system: System) -> None:
    demo = system.kring("demo", "--timeout", "30")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    case_id = demo.stdout.strip().splitlines()[-1].removeprefix("case ")
    for step in ("private family time", "minimum", "Follow-up scheduled", "outcome is recorded"):
        assert step in demo.stdout, step

    messages = await stream_messages(system)
    mine = [JSONFormat().read(CloudEvent, m.data) for m in messages]
    mine = [e for e in mine if e.get_subject() == case_id]
    assert in_order([e.get_type() for e in mine], FLOW)
    ids = [e.get_id() for e in mine]
    assert len(set(ids)) == len(ids)
    for event in mine:
        origin, position = event.get_id().split(":")
        assert event.get_source() == f"/kring/{origin}"
        assert event.get_extension("kringposition") == int(position)

    # Nobody signed in yet: the CLI says so, in one line.
    unsigned = system.kring("audit", case_id)
    assert unsigned.returncode == 1 and "kring login" in unsigned.stderr
    assert "Traceback" not in unsigned.stderr
    # A coordinator who is not the case's reads none of it.
    outsider = system.kring(
        "login", "--as", "Otto", "--role", "coordinator", "--coordinator", "otto"
    )
    assert outsider.returncode == 0, outsider.stderr
    refused = system.kring("audit", case_id)
    assert refused.returncode == 1 and "assigned to this case" in refused.stderr
    # The regional manager of the case's region signs in, as a user would.
    login = system.kring(
        "login", "--as", "Anna", "--role", "regional_manager", "--region", "Utrecht"
    )
    assert login.returncode == 0, login.stderr
    assert "signed in as Anna" in login.stdout
    audit = system.kring("audit", case_id, "--json")
    assert audit.returncode == 0, audit.stderr
    trail = json.loads(audit.stdout)
    assert {e["service"] for e in trail} == set(SERVICES)
    steps = [(e["service"], e["type"]) for e in trail]
    for step in [
        ("intake", "Submitted"),
        ("intake", "Accepted"),
        ("coordination", "CoordinatorAssigned"),
        ("coordination", "ConferenceHeld"),
        ("plans", "Written"),
        ("plans", "Distributed"),
        ("followup", "Due"),
    ]:
        assert step in steps
    assert steps.index(("intake", "Accepted")) < steps.index(("followup", "Due"))
    assert all(e["actor"] and e["actor"]["id"] for e in trail)

    human = system.kring("audit", case_id)
    assert human.returncode == 0 and "ConferenceHeld" in human.stdout

    picture = system.kring("case", case_id, "--json")
    assert picture.returncode == 0, picture.stderr
    views = json.loads(picture.stdout)
    assert views["intake"]["stage"] == "accepted"
    assert views["coordination"]["stage"] == "conference_held"
    assert views["plans"]["stage"] == "plan_distributed"
    assert any(t["fired_at"] for t in views["followup"]["timers"])

    # Every read above is on record, Anna's among them.
    log = system.kring("access-log", case_id, "--json")
    assert log.returncode == 0, log.stderr
    reads = json.loads(log.stdout)
    assert {"case", "history"} <= {e["what"] for e in reads if e["subject"] == "Anna"}
    assert "Anna (regional_manager)" in system.kring("access-log", case_id).stdout


def test_a_demo_against_a_system_that_is_not_running_says_so(system: System) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kring.cli", "demo", "--timeout", "2"],
        env=system.env | {"KRING_NATS_URL": f"nats://127.0.0.1:{free_port()}"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot reach NATS" in result.stderr and "Traceback" not in result.stderr


def test_audit_of_an_unknown_case_says_so(system: System) -> None:
    manager = Who("Anna", ("regional_manager",), regions=("Utrecht",))
    result = system.kring("audit", "00000000-0000-4000-8000-000000000000", who=manager)
    assert result.returncode == 2
    assert "no service knows case" in result.stderr


def test_the_dead_letter_commands_answer_on_a_healthy_system(system: System) -> None:
    listed = system.kring("dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    refused = system.kring("dlq", "replay")
    assert refused.returncode == 2 and "--all" in refused.stderr
