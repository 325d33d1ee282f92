"""Each model from request to follow-up through the running system (``kring run``: nats-server
and four service processes, a real SMTP server), every step through the public HTTP APIs
(``kring.workflow``) and the CLI, checked on the stream, in the plan's copies, in the delivery
records, in the mailbox and in the audit trails of both linked cases."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from collections import Counter
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from kring import scenarios, workflow
from shared.events import ConferenceModel
from tests.e2e.conftest import SERVICES, System
from tests.harness import envelopes, stream_messages

#: The integration events of one case, in the order they must appear on the stream.
FLOW = [
    "nl.kring.request-submitted.v1",
    "nl.kring.request-received.v1",
    "nl.kring.coordinator-assigned.v1",
    "nl.kring.first-contact-made.v1",
    "nl.kring.conference-held.v2",
    "nl.kring.plan-distributed.v1",
    "nl.kring.follow-up-due.v1",
    "nl.kring.outcome-recorded.v1",
    "nl.kring.ratings-recorded.v1",
    "nl.kring.follow-up-conference-requested.v1",
]


def in_order(seen: list[str], wanted: list[str]) -> bool:
    remaining = iter(seen)
    return all(any(s == w for s in remaining) for w in wanted)


async def _run(system: System, model: ConferenceModel) -> tuple[workflow.CaseRun, str]:
    region = f"E2E-{model.value}-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient() as http:
        session = workflow.Session(http, system.tokens)
        await workflow.join_pool(session, urls=system.urls, region=region)
        run = await workflow.run_case(
            session,
            model,
            urls=system.urls,
            region=region,
            key=f"e2e-{uuid.uuid4()}",
            patience=60,
            through_follow_up=True,
        )
    return run, region


def _get(system: System, service: str, path: str, region: str) -> Any:
    """A read by the regional manager of the case's region."""
    headers = system.headers(workflow.manager(region))
    response = httpx.get(f"{system.urls[service]}{path}", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize("model", list(ConferenceModel), ids=lambda m: m.value)
async def test_each_model_runs_from_request_to_follow_up(
    system: System, model: ConferenceModel
) -> None:
    scenario = scenarios.SCENARIOS[model]
    run, region = await _run(system, model)
    case = run.case_id

    # The stream: the case's integration events in order, each exactly once per origin:position.
    mine = [e for e in envelopes(await stream_messages(system)) if e["subject"] == case]
    types = [e["type"] for e in mine]
    assert in_order(types, FLOW), types
    assert Counter(e["id"] for e in mine).most_common(1)[0][1] == 1
    held = next(e for e in mine if e["type"] == "nl.kring.conference-held.v2")["data"]
    assert len(held["participants"]) == len(scenario.people)
    assert 0 < sum(held["attended"].values()) <= len(scenario.people)
    names = {p.name for p in scenario.people}
    assert not names & set(json.dumps(mine).split('"')), "a name travelled on the bus"
    assigned = next(e for e in mine if e["type"] == "nl.kring.coordinator-assigned.v1")
    assert len(assigned["data"]["coordinator_ids"]) == scenario.coordinators_needed

    # The informational talk came first, and acceptance waited for it.
    request = _get(system, "intake", f"/cases/{case}", region).json()
    assert [t["outcome"] for t in request["informational_talks"]] == list(scenario.talks)
    assert request["stage"] == "accepted" and not request["waiting_for_talk"]
    # Everyone confirmed was informed before the conference was scheduled.
    listed = _get(system, "coordination", f"/cases/{case}/participants", region).json()
    assert all(p["informed_on"] for p in listed) and len(listed) == len(scenario.people)
    coordination_view = _get(system, "coordination", f"/cases/{case}", region).json()
    assert coordination_view["passed_over"] is not None  # the regional manager sees why

    # The plan's copies: HTML and PDF, names printed, in the family's language, with both
    # questions (each with the agreements answering it) and the minimum requirement.
    html = _get(system, "plans", f"/cases/{case}/plan/document.html?version=1", region).text
    assert "Ons plan" in html and all(p.name in html for p in scenario.people)
    assert "De vragen" in html and "Afspraken bij deze vraag" in html
    assert scenario.question in html and scenario.second_question in html
    for requirement in scenario.minimum_requirements:
        assert requirement["requirement"] in html and "Minimumeis" in html
    pdf = _get(system, "plans", f"/cases/{case}/plan/document.pdf", region)
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")

    # A delivery record per copy: e-mail copies sent through SMTP, the rest handed over.
    copies = _get(system, "plans", f"/cases/{case}/plan/deliveries", region).json()
    by_id = {c["participant_id"]: c for c in copies}
    for p in scenario.people:
        copy = by_id[run.participant_ids[p.key]]
        assert (copy["channel"], copy["status"]) == (
            ("email", "sent") if p.email else ("by_hand", "delivered")
        )
    # One e-mail per distributed version (the family model's revised plan went out too).
    versions = 2 if scenario.revision_at_next_meeting else 1
    emails = {p.email for p in scenario.people if p.email}
    received = Counter(m["To"] for m in system.mailbox.messages if m["To"] in emails)
    assert received == dict.fromkeys(emails, versions)

    # The family's own next meeting, recorded as a contact; where they asked for it, a
    # revised plan followed.
    follow_up = _get(system, "followup", f"/cases/{case}", region).json()
    [meeting] = follow_up["meetings"]
    assert meeting["held"] and set(meeting["agreements"]) == set(follow_up["agreement_ids"])
    plan = _get(system, "plans", f"/cases/{case}/plan", region).json()
    assert plan["clarification_known"] and len(plan["questions"]) == 2
    if scenario.revision_at_next_meeting:
        assert len(plan["versions"]) == 2 and plan["revision_requested_at"] is None
        assert [d["version"] for d in plan["distributions"]] == [1, 2]
        assert follow_up["plan_version"] == 2
        assert "nl.kring.plan-revision-requested.v1" in types
    else:
        assert len(plan["versions"]) == 1
        assert "nl.kring.plan-revision-requested.v1" not in types

    # The follow-up conference: a new case in intake, linked both ways.
    new_case = run.follow_up_case_id
    assert new_case is not None
    original = _get(system, "intake", f"/cases/{case}", region).json()
    assert new_case in original["follow_ups"]
    follow_up = _get(system, "followup", f"/cases/{case}", region).json()
    assert new_case in [str(c) for c in follow_up["follow_up_cases"]]

    # The audit trails through the CLI: every service, every actor, both cases.
    manager = workflow.manager(region)
    audit = system.kring("audit", case, "--json", who=manager)
    assert audit.returncode == 0, audit.stderr
    trail = json.loads(audit.stdout)
    assert {e["service"] for e in trail} == set(SERVICES)
    assert all(e["actor"] and e["actor"]["id"] and e["actor"]["role"] for e in trail)
    # Each step by whom it is: the regional manager, the assigned coordinator, the professional.
    actors = {(e["service"], e["type"]): e["actor"] for e in trail}
    assert actors[("intake", "Accepted")]["role"] == "regional_manager"
    assert actors[("coordination", "ConferenceHeld")]["role"] == "coordinator"
    assert actors[("plans", "Distributed")]["role"] == "coordinator"
    assert actors[("intake", "Submitted")] == {
        "id": "workflow-requester",
        "name": "workflow-requester",
        "role": "requester",
    }
    steps = {(e["service"], e["type"]) for e in trail}
    for wanted in [
        ("intake", "Accepted"),
        ("intake", "InformationalTalkHeld"),
        ("intake", "FollowUpOpened"),
        ("coordination", "ParticipantInformed"),
        ("plans", "ClarificationNoted"),
        ("followup", "MeetingRecorded"),
        ("coordination", "ConferenceHeld"),
        ("plans", "Distributed"),
        ("followup", "Due"),
        ("followup", "FollowUpConferenceRequested"),
    ]:
        assert wanted in steps, wanted
    linked = system.kring("audit", new_case, "--json", who=manager)
    assert linked.returncode == 0, linked.stderr
    assert json.loads(linked.stdout)[0]["type"] == "Submitted"

    # kring cases: the case, and the follow-up case it opened, in the region's list.
    listed = system.kring("cases", "--region", region, "--json", who=manager)
    assert listed.returncode == 0, listed.stderr
    rows = {row["case_id"]: row for row in json.loads(listed.stdout)}
    assert rows[case]["model"] == model.value
    assert rows[case]["stage_service"] == "followup"
    assert rows[new_case]["follow_up_of"] == case
    assert rows[new_case]["stage"] == "submitted"


async def test_kring_erase_erases_a_case_in_every_service(system: System) -> None:
    run, region = await _run(system, ConferenceModel.RESTORATIVE)
    case = run.case_id

    # kring export on the cases the system holds (this module's demos): the case is in it.
    target = system.data / "analyst-export"
    before = system.kring("export", "--to", str(target))
    assert before.returncode == 0, before.stderr
    key = base64.b64decode((target / "pseudonym.key").read_text())

    def pseudonym_of(case_id: str) -> str:
        return hmac.new(key, uuid.UUID(case_id).bytes, hashlib.sha256).hexdigest()[:32]

    cases = pq.read_table(target / "current" / "cases").to_pylist()
    assert pseudonym_of(case) in {row["case_pseudonym"] for row in cases}

    manager = workflow.manager(region)
    nobody = system.kring("erase", case, "--reason", "other", who=workflow.REQUESTER)
    assert nobody.returncode == 1 and "needs the role regional_manager" in nobody.stderr
    erased = system.kring(
        "erase", case, "--reason", "requested_by_person", "--timeout", "30", who=manager
    )
    assert erased.returncode == 0, erased.stdout + erased.stderr
    for service in SERVICES:
        assert service in erased.stdout
    # The follow-up case the demo asked for goes with it (it copies the family's names).
    follow_ups = re.findall(r"erased follow-up case (\S+) with it", erased.stdout)
    assert len(follow_ups) == 1, erased.stdout

    for service, path in [
        ("intake", f"/cases/{case}"),
        ("coordination", f"/cases/{case}/participants"),
        ("plans", f"/cases/{case}/plan/document.pdf"),
        ("followup", f"/cases/{case}"),
    ]:
        response = httpx.get(
            f"{system.urls[service]}{path}", headers=system.headers(manager), timeout=10
        )
        assert response.status_code == 410, (service, response.text)

    audit = system.kring("audit", case, "--json", who=manager)
    assert audit.returncode == 0, audit.stderr
    trail = json.loads(audit.stdout)
    assert {(e["service"], e["type"]) for e in trail} == {(s, "CaseErased") for s in SERVICES}
    assert next(e for e in trail if e["service"] == "intake")["actor"]["id"] == manager.name
    picture = json.loads(system.kring("case", case, "--json", who=manager).stdout)
    assert set(picture) == set(SERVICES) and all("erased" in v for v in picture.values())
    listed = json.loads(system.kring("cases", "--region", region, "--json", who=manager).stdout)
    assert case not in {row["case_id"] for row in listed}
    # Who read the case before it went is still known; the log names nobody of the family.
    log = system.kring("access-log", case, "--json", who=manager)
    assert log.returncode == 0, log.stderr
    reads = json.loads(log.stdout)
    assert {e["service"] for e in reads} >= {"coordination", "plans"}
    names = {p.name for p in scenarios.SCENARIOS[ConferenceModel.RESTORATIVE].people}
    assert not any(name in log.stdout for name in names)

    again = system.kring("erase", case, "--reason", "other", who=manager)
    assert again.returncode == 0 and "already erased" in again.stdout

    # The next export removes the erased case and its follow-up case; the report reads the
    # same stream.
    after = system.kring("export", "--to", str(target))
    assert after.returncode == 0, after.stderr
    assert "2 erased case(s) removed" in after.stdout
    gone = [pseudonym_of(c).encode() for c in (case, *follow_ups)]
    for path in (target / "current").rglob("*"):
        if path.is_file() and "state" not in path.parts:
            content = path.read_bytes()
            assert not [p for p in gone if p in content], path
    exported = pq.read_table(target / "current" / "cases").to_pylist()
    report = system.kring("report", "--out", str(system.data / "report.html"), "--by", "model")
    assert report.returncode == 0, report.stderr
    page = (system.data / "report.html").read_text(encoding="utf-8")
    assert "Van aanvraag tot vervolg" in page and (system.data / "report-funnel.png").exists()
    assert f"{len(exported)} request(s)" in report.stdout  # the report counts what the export has
