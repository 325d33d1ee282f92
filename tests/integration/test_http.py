"""The HTTP edge: bad input is 422 naming the field, unknown cases 404, invalid transitions 409,
and nothing is half-stored."""

from __future__ import annotations

import uuid
from pathlib import Path

from services.intake.bootstrap import build
from services.intake.settings import IntakeSettings
from tests.factories import REQUEST_BODY, headers
from tests.harness import running
from tests.servers import NatsServer


async def test_bad_input_is_refused_naming_the_field_and_stores_nothing(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    settings = IntakeSettings(nats_url=own_nats.url, data_dir=tmp_path)
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

        response = await intake.http.post("/cases", json=REQUEST_BODY)
        assert response.status_code == 422
        assert ["header", "x-kring-actor"] in [e["loc"] for e in response.json()["detail"]]

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
    settings = IntakeSettings(nats_url=own_nats.url, data_dir=tmp_path)
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
    settings = IntakeSettings(nats_url=own_nats.url, data_dir=tmp_path)
    async with running(build(settings)) as intake:
        await intake.service.bus.wait_started()
        assert (await intake.http.get("/health/live")).status_code == 200
        assert (await intake.http.get("/health/ready")).status_code == 200
        assert "/cases" in (await intake.http.get("/openapi.json")).json()["paths"]
        asyncapi = (await intake.http.get("/asyncapi.json")).json()
        assert "kring.intake.request-received" in str(asyncapi["channels"])
        assert "kring_relay_published_total" in (await intake.http.get("/metrics")).text


async def test_a_conference_breaking_its_model_is_refused_with_the_reason(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    from services.coordination.bootstrap import build as build_coordination
    from services.coordination.settings import CoordinationSettings
    from tests.factories import delivered, request_received

    settings = CoordinationSettings(nats_url=own_nats.url, data_dir=tmp_path)
    async with running(build_coordination(settings)) as coordination:
        pool = {"coordinator_id": "c1", "regions": ["Utrecht"], "languages": ["nl"]}
        await coordination.http.post("/coordinators", json=pool, headers=headers())
        event = request_received()
        coordination.app.process(delivered(event, 1))
        record = {
            "held_on": "2026-04-01",
            "parts": ["information", "plan_making", "presentation"],
            "attendance": {"plan_making": {"family": 4, "professional": 1}},
        }
        url = f"/cases/{event.case_id}/conference"
        response = await coordination.http.post(url, json=record, headers=headers())
        assert response.status_code == 409
        assert "private family time" in response.json()["detail"]

        record["attendance"] = {"plan_making": {"neighbour-of-johan": 1}}
        response = await coordination.http.post(url, json=record, headers=headers())
        assert response.status_code == 422

        record["attendance"] = {"plan_making": {"family": 4}}
        response = await coordination.http.post(url, json=record, headers=headers())
        assert response.status_code == 200, response.text
