"""The HTTP edge: bad input is 422 naming the field, unknown cases 404, invalid transitions 409,
and nothing is half-stored."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from services.coordination.bootstrap import build as build_coordination
from services.coordination.settings import CoordinationSettings
from services.intake.bootstrap import build
from services.intake.settings import IntakeSettings
from shared.clock import ManualClock
from tests.factories import REQUEST_BODY, delivered, headers, request_received
from tests.harness import Running, envelopes, eventually, running, stream_messages
from tests.servers import NatsServer


async def test_bad_input_is_refused_naming_the_field_and_stores_nothing(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    settings = IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path)
    async with running(build(settings)) as intake:
        recorder = intake.app.recorder
        before = recorder.max_notification_id()
        body = {k: v for k, v in REQUEST_BODY.items() if k != "model"}
        response = await intake.http.post("/cases", json=body, headers=headers())
        assert response.status_code == 422
        assert ["body", "model"] in [e["loc"] for e in response.json()["detail"]]

        wrong_model = REQUEST_BODY | {"model": "tribunal"}
        response = await intake.http.post("/cases", json=wrong_model, headers=headers())
        assert response.status_code == 422
        assert ["body", "model"] in [e["loc"] for e in response.json()["detail"]]

        response = await intake.http.post(
            "/cases", json=REQUEST_BODY, headers={"Authorization": ""}
        )
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"

        response = await intake.http.post("/cases", content=b"{", headers=headers())
        assert response.status_code == 422

        created = await intake.http.post("/cases", json=REQUEST_BODY, headers=headers())
        case_id = created.json()["case_id"]
        before = recorder.max_notification_id()
        no_question = {"conference_questions": [], "funding": {"payer": "school"}}
        response = await intake.http.post(
            f"/cases/{case_id}/clarify", json=no_question, headers=headers()
        )
        assert response.status_code == 422
        assert ["body", "conference_questions"] in [e["loc"] for e in response.json()["detail"]]
        assert recorder.max_notification_id() == before


async def test_an_unknown_case_is_404_and_an_invalid_transition_409(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    settings = IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path)
    async with running(build(settings)) as intake:
        unknown = uuid.uuid4()
        assert (await intake.http.get(f"/cases/{unknown}")).status_code == 404
        assert (await intake.http.get(f"/cases/{unknown}/history")).status_code == 404
        response = await intake.http.post(f"/cases/{unknown}/accept", headers=headers())
        assert response.status_code == 404

        created = await intake.http.post("/cases", json=REQUEST_BODY, headers=headers())
        case_id = created.json()["case_id"]
        withdrawn = await intake.http.post(
            f"/cases/{case_id}/withdraw", json={"reason": "solved"}, headers=headers()
        )
        assert withdrawn.status_code == 200
        before = intake.app.recorder.max_notification_id()
        response = await intake.http.post(f"/cases/{case_id}/accept", headers=headers())
        assert response.status_code == 409
        assert "withdrawn" in response.json()["detail"]
        assert intake.app.recorder.max_notification_id() == before


async def test_health_and_documents_are_served(own_nats: NatsServer, tmp_path: Path) -> None:
    settings = IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path)
    async with running(build(settings)) as intake:
        await intake.service.bus.wait_started()
        assert (await intake.http.get("/health/live")).status_code == 200
        assert (await intake.http.get("/health/ready")).status_code == 200
        assert "/cases" in (await intake.http.get("/openapi.json")).json()["paths"]
        asyncapi = (await intake.http.get("/asyncapi.json")).json()
        assert "kring.intake.request-received" in str(asyncapi["channels"])
        assert "kring_relay_published_total" in (await intake.http.get("/metrics")).text


async def _coordination_with_case(
    coordination: Running, **request: Any
) -> tuple[str, dict[str, str]]:
    """One coordinator in Utrecht (the four-field body older callers send), one case assigned
    to them, first contact made, a central person, a family member and a professional invited,
    confirmed and informed. Returns the case id and the participant ids by role."""
    pool = {"coordinator_id": "c1", "regions": ["Utrecht"], "languages": ["nl"], "capacity": 3}
    response = await coordination.http.post("/coordinators", json=pool, headers=headers())
    assert response.status_code == 201, response.text
    event = request_received(**request)
    coordination.app.process(delivered(event, 1))
    case = f"/cases/{event.case_id}"
    coordinator = headers("c1", "coordinator")
    assert (await coordination.http.post(f"{case}/contact", headers=coordinator)).status_code == 200
    ids = {}
    for role, organisation in (
        ("central_person", None),
        ("family", None),
        ("professional", "Jeugdzorg Utrecht"),
    ):
        body = {"name": f"Naam {role}", "role": role, "contact": "naam@example.org"}
        response = await coordination.http.post(
            f"{case}/participants",
            json=body | {"organisation": organisation, "language": "nl"},
            headers=coordinator,
        )
        assert response.status_code == 201, response.text
        created = response.json()
        assert (created["role"], created["invitation"]) == (role, "invited")
        ids[role] = created["participant_id"]
        confirmed = await coordination.http.post(
            f"{case}/participants/{ids[role]}/confirm",
            json={"share_details": True},
            headers=coordinator,
        )
        assert confirmed.status_code == 200, confirmed.text
        informed = await coordination.http.post(
            f"{case}/participants/{ids[role]}/informed", headers=coordinator
        )
        assert informed.status_code == 200 and informed.json()["informed_on"], informed.text
    return str(event.case_id), ids


def _conference(ids: dict[str, str], plan_making: list[str], coordinator: bool) -> dict[str, Any]:
    return {
        "held_on": date.today().isoformat(),
        "parts": {
            "information": {"present": list(ids.values()), "coordinator": True},
            "plan_making": {"present": plan_making, "coordinator": coordinator},
            "presentation": {"present": list(ids.values()), "coordinator": True},
        },
    }


async def test_a_conference_breaking_its_model_is_refused_with_the_reason(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    settings = CoordinationSettings(**own_nats.settings("coordination"), data_dir=tmp_path)
    async with running(build_coordination(settings)) as coordination:
        case_id, ids = await _coordination_with_case(coordination)
        url = f"/cases/{case_id}/conference"
        coordinator = headers("c1", "coordinator")
        record = _conference(ids, [ids["family"]], coordinator=False)
        response = await coordination.http.post(url, json=record, headers=coordinator)
        assert response.status_code == 409
        assert "once it was scheduled" in response.json()["detail"]
        schedule = {"on": date.today().isoformat(), "venue": "the community centre"}
        response = await coordination.http.post(
            f"/cases/{case_id}/schedule", json=schedule, headers=coordinator
        )
        assert response.json()["stage"] == "conference_scheduled"

        recorder = coordination.app.recorder
        before = recorder.max_notification_id()
        record = _conference(ids, [ids["family"], ids["professional"]], coordinator=False)
        response = await coordination.http.post(url, json=record, headers=coordinator)
        assert response.status_code == 409
        assert "private family time" in response.json()["detail"]

        record = _conference(ids, [ids["family"], ids["family"] + "9"], coordinator=False)
        response = await coordination.http.post(url, json=record, headers=coordinator)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "parts", "plan_making", "present", 1]

        old_body = {"held_on": "2026-04-01", "parts": ["plan_making"], "attendance": {}}
        response = await coordination.http.post(url, json=old_body, headers=coordinator)
        assert response.status_code == 422
        assert recorder.max_notification_id() == before  # nothing half-stored

        record = _conference(ids, [ids["central_person"], ids["family"]], coordinator=False)
        response = await coordination.http.post(url, json=record, headers=coordinator)
        assert response.status_code == 200, response.text
        held = response.json()
        assert held["stage"] == "conference_held"
        assert held["parts"]["plan_making"]["attendance"] == {"central_person": 1, "family": 1}
        assert held["parts"]["information"]["attendance"]["coordinator"] == 1

        # On the stream: parts and attendance by role, participants by id, never a name.
        async def published() -> bool:
            messages = await stream_messages(own_nats, "kring.coordination.>")
            return "nl.kring.conference-held.v2" in [e["type"] for e in envelopes(messages)]

        await eventually(published, what="ConferenceHeld on the stream")
        messages = envelopes(await stream_messages(own_nats, "kring.coordination.>"))
        conference = next(e for e in messages if e["type"] == "nl.kring.conference-held.v2")
        refs = {p["participant_id"]: p for p in conference["data"]["participants"]}
        assert refs[ids["professional"]]["organisation"] == "Jeugdzorg Utrecht"
        assert set(refs) == set(ids.values())
        assert "Naam" not in json.dumps(messages) and "naam@" not in json.dumps(messages)


async def test_coordination_names_the_field_of_bad_input_and_stores_nothing(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    settings = CoordinationSettings(**own_nats.settings("coordination"), data_dir=tmp_path)
    async with running(build_coordination(settings)) as coordination:
        case_id, ids = await _coordination_with_case(coordination)
        http, recorder = coordination.http, coordination.app.recorder
        case = f"/cases/{case_id}"
        before = recorder.max_notification_id()

        async def refused(method: str, url: str, body: Any, status: int = 422) -> Any:
            response = await http.request(method, url, json=body, headers=headers())
            assert response.status_code == status, response.text
            return response.json()["detail"]

        too_big = {"coordinator_id": "c9", "regions": ["X"], "languages": ["nl"], "capacity": 51}
        assert ["body", "capacity"] in [
            e["loc"] for e in await refused("POST", "/coordinators", too_big)
        ]
        detail = await refused(
            "POST", f"{case}/assign", {"coordinator_ids": ["c1", "nobody"], "reason": "r"}
        )
        assert detail[0]["loc"] == ["body", "coordinator_ids", 1]
        detail = await refused(
            "POST", f"{case}/assign", {"coordinator_id": "nobody", "reason": "r"}
        )
        assert detail[0]["loc"] == ["body", "coordinator_id"]
        detail = await refused(
            "PUT", f"{case}/arrangements", {"languages": ["nl"], "interpreter": "ar"}
        )
        assert detail[0]["loc"] == ["body", "interpreter"]
        detail = await refused("POST", f"{case}/information", {"topic": "t", "brought_by": "p77"})
        assert detail[0]["loc"] == ["body", "brought_by"]
        await refused("POST", f"{case}/participants/p77/confirm", {}, status=404)
        await refused("POST", "/coordinators/nobody/availability", {"available": False}, 404)
        relation = {"case_id": case_id, "kind": "neighbour"}
        assert ["body", "kind"] in [
            e["loc"] for e in await refused("POST", "/coordinators/c1/relations", relation)
        ]
        detail = await refused(
            "POST", f"{case}/assign", {"coordinator_ids": ["c1"], "reason": "r"}, 409
        )
        assert "already coordinate" in detail
        assert recorder.max_notification_id() == before

        # A decline is respected: 403 saying only they may change it, and nothing stored.
        coordinator = headers("c1", "coordinator")
        url = f"{case}/participants/{ids['family']}"
        declined = await http.post(f"{url}/decline", json={"reason": "no"}, headers=coordinator)
        assert declined.json()["invitation"] == "declined"
        pressed = await http.post(f"{url}/confirm", json={}, headers=coordinator)
        assert pressed.status_code == 403 and "never pressed" in pressed.json()["detail"]
        someone_else = headers("them", "participant", participant=(f"{case_id}:p77",))
        refused = await http.post(f"{url}/confirm", headers=someone_else)
        assert refused.status_code == 403
        them = headers("them", "participant", participant=(f"{case_id}:{ids['family']}",))
        themself = await http.post(f"{url}/confirm", headers=them)
        assert themself.status_code == 200 and themself.json()["invitation"] == "confirmed"


async def test_coordination_lists_and_views_show_no_names(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    settings = CoordinationSettings(**own_nats.settings("coordination"), data_dir=tmp_path)
    async with running(build_coordination(settings)) as coordination:
        case_id, ids = await _coordination_with_case(coordination, model="group")
        http = coordination.http
        waiting = request_received(region="Texel")
        coordination.app.process(delivered(waiting, 2))

        rows = (await http.get("/cases", params={"coordinator_id": "c1"})).json()["items"]
        assert [r["case_id"] for r in rows] == [case_id]
        row = rows[0]
        for field in (
            "model",
            "region",
            "stage",
            "coordinator_ids",
            "overdue",
            "waiting_reason",
            "first_contact_due",
            "scheduled_on",
        ):
            assert field in row
        assert (row["stage"], row["overdue"]) == ("preparing", False)
        unassigned = (await http.get("/cases/unassigned")).json()["items"]
        assert [(r["case_id"], r["waiting_reason"]) for r in unassigned] == [
            (str(waiting.case_id), "no coordinator works in region Texel")
        ]
        pool = (await http.get("/coordinators")).json()["items"]
        assert (pool[0]["coordinator_id"], pool[0]["open_cases"], pool[0]["available"]) == (
            "c1",
            1,
            True,
        )

        shown = json.dumps(
            [
                (await http.get(f"/cases/{case_id}")).json(),
                (await http.get(f"/cases/{case_id}/participants")).json(),
                (await http.get(f"/cases/{case_id}/history")).json(),
                rows,
            ]
        )
        assert "Naam" not in shown and "naam@example.org" not in shown
        view = (await http.get(f"/cases/{case_id}")).json()
        assert [p["participant_id"] for p in view["participants"]] == list(ids.values())
        assert view["assignments"][0]["reason"].startswith("c1: works in Utrecht")


async def test_the_overdue_job_records_a_missed_deadline_once(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    clock = ManualClock()
    settings = CoordinationSettings(
        **own_nats.settings("coordination"), data_dir=tmp_path, tick_seconds=0.05
    )
    async with running(build_coordination(settings, clock=clock)) as coordination:
        pool = {"coordinator_id": "c1", "regions": ["Utrecht"], "languages": ["nl"]}
        await coordination.http.post("/coordinators", json=pool, headers=headers())
        event = request_received()
        coordination.app.process(delivered(event, 1))
        clock.advance(timedelta(days=3, minutes=1))

        async def recorded() -> bool:
            history = (await coordination.http.get(f"/cases/{event.case_id}/history")).json()
            return "FirstContactOverdue" in [e["type"] for e in history]

        await eventually(recorded, what="FirstContactOverdue")
        rows = (await coordination.http.get("/cases", params={"overdue": "true"})).json()["items"]
        assert [r["case_id"] for r in rows] == [str(event.case_id)]
        view = (await coordination.http.get(f"/cases/{event.case_id}")).json()
        assert view["overdue"] and view["overdue_recorded"]
        history = (await coordination.http.get(f"/cases/{event.case_id}/history")).json()
        assert [e["type"] for e in history].count("FirstContactOverdue") == 1
