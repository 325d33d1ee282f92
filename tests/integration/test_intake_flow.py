"""Intake on a real NATS: a retried submission makes one case, a withdrawal after acceptance is
published, and a follow-up conference requested downstream opens one linked case."""

from __future__ import annotations

import uuid
from pathlib import Path

from services.intake.bootstrap import build
from services.intake.settings import IntakeSettings
from shared.envelope import encode
from shared.events import FollowUpConferenceRequested
from tests.factories import CLARIFICATION, NOW, REQUEST_BODY, bus_headers, headers
from tests.harness import envelopes, eventually, running, stream_messages
from tests.servers import NatsServer


async def test_a_submission_retried_with_its_key_makes_one_case(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    settings = IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path)
    async with running(build(settings)) as intake:
        keyed = headers("ria", "requester") | {"Idempotency-Key": "form-42"}
        first = await intake.http.post("/cases", json=REQUEST_BODY, headers=keyed)
        again = await intake.http.post("/cases", json=REQUEST_BODY, headers=keyed)
        assert first.status_code == again.status_code == 201
        assert first.json()["case_id"] == again.json()["case_id"]

        changed = REQUEST_BODY | {"description": "Something else entirely."}
        refused = await intake.http.post("/cases", json=changed, headers=keyed)
        assert refused.status_code == 409
        assert "Idempotency-Key" in refused.json()["detail"]
        assert (await intake.http.get("/cases")).json()["total"] == 1

        nobody = REQUEST_BODY | {"central_persons": []}
        response = await intake.http.post("/cases", json=nobody, headers=headers())
        assert response.status_code == 422
        assert "central person(s) or the central group" in response.text


async def test_withdrawal_after_acceptance_and_a_follow_up_case_travel_the_bus(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    settings = IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path)
    async with running(build(settings)) as intake:
        # The test publishes on the stream itself: the service must have made it first.
        await intake.service.bus.wait_started()
        case_id = (await intake.http.post("/cases", json=REQUEST_BODY, headers=headers())).json()[
            "case_id"
        ]
        await intake.http.post(f"/cases/{case_id}/clarify", json=CLARIFICATION, headers=headers())
        assert (
            await intake.http.post(f"/cases/{case_id}/accept", headers=headers())
        ).status_code == 200

        new_case = uuid.uuid4()
        requested = FollowUpConferenceRequested(
            case_id=uuid.UUID(case_id), model="family", new_case_id=new_case, requested_at=NOW
        )
        connection = await own_nats.connect("followup")
        js = connection.jetstream()
        for _ in range(2):  # the same event twice (a redelivery): one new case
            await js.publish(
                requested.subject(),
                encode(requested, origin="followup", position=3, time=NOW),
                headers=bus_headers("followup", 3),
            )
        await connection.close()

        async def follow_up_opened() -> bool:
            return (await intake.http.get(f"/cases/{new_case}")).status_code == 200

        await eventually(follow_up_opened, what="the follow-up case")
        follow_up = (await intake.http.get(f"/cases/{new_case}")).json()
        assert follow_up["follow_up_of"] == case_id
        assert (await intake.http.get(f"/cases/{case_id}")).json()["follow_ups"] == [str(new_case)]
        rows = (await intake.http.get("/cases", params={"stage": "submitted"})).json()["items"]
        assert [r["case_id"] for r in rows] == [str(new_case)]

        withdrawn = await intake.http.post(
            f"/cases/{case_id}/withdraw", json={"reason": "moved away"}, headers=headers()
        )
        assert withdrawn.status_code == 200

        async def published() -> bool:
            messages = await stream_messages(own_nats, "kring.intake.>")
            types = [(e["subject"], e["type"]) for e in envelopes(messages)]
            return types == [
                (case_id, "nl.kring.request-submitted.v1"),
                (case_id, "nl.kring.request-received.v1"),
                (str(new_case), "nl.kring.request-submitted.v1"),  # the follow-up, opened once
                (case_id, "nl.kring.request-withdrawn.v1"),
            ]

        await eventually(published, what="submitted, received, the follow-up, withdrawn")
