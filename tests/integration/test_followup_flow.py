"""Follow-up on a real NATS, beside intake: a distributed plan schedules the contacts, the timer
loop fires the coordinator's call when the clock says so, an outcome is recorded over HTTP
(refused first with 409 and 422 where it should be), and a follow-up conference requested over
HTTP travels the stream to intake, which opens the new case linked both ways."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from services.followup.bootstrap import build as build_followup
from services.followup.settings import FollowupSettings
from services.intake.bootstrap import build as build_intake
from services.intake.settings import IntakeSettings
from shared.clock import ManualClock
from shared.envelope import encode
from tests.factories import (
    CLARIFICATION,
    NOW,
    REQUEST_BODY,
    bus_headers,
    coordinator_assigned,
    headers,
    plan_distributed,
)
from tests.harness import Running, envelopes, eventually, running, stream_messages
from tests.servers import NatsServer

COORDINATOR = headers("c1", "coordinator")
FAMILY = headers("herman", "participant")


async def accepted_case(intake: Running) -> str:
    created = await intake.http.post("/cases", json=REQUEST_BODY, headers=headers())
    case_id: str = created.json()["case_id"]
    await intake.http.post(f"/cases/{case_id}/clarify", json=CLARIFICATION, headers=headers())
    accepted = await intake.http.post(f"/cases/{case_id}/accept", headers=headers())
    assert accepted.status_code == 200
    return case_id


async def distribute(nats: NatsServer, case_id: str, clock: ManualClock) -> None:
    """Coordination's CoordinatorAssigned (c1) and plans' PlanDistributed, as their relays put
    them on the stream, each published by its own identity."""
    assigned = coordinator_assigned(uuid.UUID(case_id))
    event = plan_distributed(
        uuid.UUID(case_id), at=clock.now(), agreement_ids=["a1", "a2"], next_meeting_on=None
    )
    for origin, message in (("coordination", assigned), ("plans", event)):
        connection = await nats.connect(origin)
        try:
            await connection.jetstream().publish(
                message.subject(),
                encode(message, origin=origin, position=1, time=NOW),
                headers=bus_headers(origin, 1),
            )
        finally:
            await connection.close()


def stored_since(service: Any, position: int) -> list[str]:
    """What the service stored after ``position``, by event name (named, so a surprise says
    what it is)."""
    notifications = service.app.recorder.select_notifications(
        start=position, limit=100, inclusive_of_start=False
    )
    return [n.topic.rpartition(":")[2] for n in notifications]


async def test_an_outcome_and_a_follow_up_conference_travel_the_bus_to_a_linked_case(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    clock = ManualClock()
    followup_settings = FollowupSettings(
        **own_nats.settings("followup"), data_dir=tmp_path / "followup", timer_tick_seconds=0.05
    )
    intake_settings = IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path / "intake")
    async with (
        running(build_intake(intake_settings)) as intake,
        running(build_followup(followup_settings, clock=clock)) as followup,
    ):
        await followup.service.bus.wait_started()
        case_id = await accepted_case(intake)
        await distribute(own_nats, case_id, clock)

        async def scheduled() -> bool:
            if (await followup.http.get(f"/cases/{case_id}")).status_code != 200:
                return False
            # Followup hears the coordinator from coordination, apart from the plan.
            facts = followup.app.case_facts(uuid.UUID(case_id))
            return bool(facts.coordinator_ids == ("c1",))

        await eventually(scheduled, what="the follow-up of the distributed plan")
        view = (await followup.http.get(f"/cases/{case_id}")).json()
        assert [t["timer_id"] for t in view["timers"]] == ["coordinator_call", "research"]
        assert view["stage"] == "follow_up_scheduled"

        outcomes = f"/cases/{case_id}/outcomes"
        call = {"timer_id": "coordinator_call", "reached": True}
        before = followup.app.recorder.max_notification_id()
        early = await followup.http.post(outcomes, json=call, headers=COORDINATOR)
        assert early.status_code == 409
        assert "not due yet" in early.json()["detail"]
        assert stored_since(followup, before) == []

        clock.advance(timedelta(days=28))

        async def call_due() -> bool:
            view = (await followup.http.get(f"/cases/{case_id}")).json()
            return bool(view["stage"] == "follow_up_due")

        await eventually(call_due, what="the coordinator's call to come due")

        unknown = call | {"agreements": {"a1": "kept", "a7": "kept"}}
        response = await followup.http.post(outcomes, json=unknown, headers=COORDINATOR)
        assert response.status_code == 422
        assert ["body", "agreements", "a7"] in [e["loc"] for e in response.json()["detail"]]
        response = await followup.http.post(
            outcomes, json=call | {"timer_id": "call-9"}, headers=COORDINATOR
        )
        assert response.status_code == 422
        assert ["body", "timer_id"] in [e["loc"] for e in response.json()["detail"]]
        response = await followup.http.post(
            outcomes, json=call | {"agreements": {"a1": "mostly"}}, headers=COORDINATOR
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"][:3] == ["body", "agreements", "a1"]
        response = await followup.http.post(outcomes, json=call, headers={"Authorization": ""})
        assert response.status_code == 401
        response = await followup.http.post(outcomes, json=call, headers=FAMILY)
        assert response.status_code == 403
        assert "needs the role coordinator" in response.json()["detail"]
        response = await followup.http.post(
            outcomes, json=call, headers=headers("c2", "coordinator")
        )
        assert response.status_code == 403
        assert "coordinator assigned to this case (c1)" in response.json()["detail"]
        assert stored_since(followup, before) == ["FollowUp.Due"]  # refusals stored nothing

        kept = call | {"agreements": {"a1": "kept", "a2": "partly_kept"}, "notes": "Wim helps"}
        recorded = await followup.http.post(outcomes, json=kept, headers=COORDINATOR)
        assert recorded.status_code == 201, recorded.text
        view = recorded.json()
        assert view["stage"] == "follow_up_scheduled"
        assert view["outcomes"][0]["agreements"] == {"a1": "kept", "a2": "partly_kept"}
        assert view["outcomes"][0]["recorded_by"] == "c1"
        assert "Wim" not in recorded.text
        again = await followup.http.post(outcomes, json=kept, headers=COORDINATOR)
        assert again.status_code == 409 and "already recorded" in again.json()["detail"]

        ask = f"/cases/{case_id}/follow-up-conference"
        keyed = COORDINATOR | {"Idempotency-Key": "ask-1"}
        body = {"reason": "the finances are a worry again"}
        first = await followup.http.post(ask, json=body, headers=keyed)
        retried = await followup.http.post(ask, json=body, headers=keyed)
        assert first.status_code == retried.status_code == 201
        new_case = first.json()["new_case_id"]
        assert retried.json() == {"case_id": case_id, "new_case_id": new_case}
        unknown_case = await followup.http.post(
            f"/cases/{uuid.uuid4()}/follow-up-conference", json={}, headers=COORDINATOR
        )
        assert unknown_case.status_code == 404
        assert "no plan of it was distributed" in unknown_case.json()["detail"]

        async def opened_in_intake() -> bool:
            return (await intake.http.get(f"/cases/{new_case}")).status_code == 200

        await eventually(opened_in_intake, what="intake to open the follow-up case")
        assert (await intake.http.get(f"/cases/{new_case}")).json()["follow_up_of"] == case_id
        assert (await intake.http.get(f"/cases/{case_id}")).json()["follow_ups"] == [new_case]

        async def coordinator_known() -> bool:
            # Followup learns who coordinates the case from coordination's events, on its own
            # time: until then the coordinator's read is refused (403, "not known here yet").
            answer = await followup.http.get(f"/cases/{case_id}/history")
            return answer.status_code == 200

        await eventually(coordinator_known, what="followup to know the case's coordinator")
        followup_trail = (await followup.http.get(f"/cases/{case_id}/history")).json()
        intake_history = await intake.http.get(f"/cases/{case_id}/history")
        assert intake_history.status_code == 200, intake_history.text
        intake_trail = intake_history.json()
        assert [e["type"] for e in followup_trail][-2:] == [
            "OutcomeRecorded",
            "FollowUpConferenceRequested",
        ]
        assert followup_trail[-1]["actor"] == {"id": "c1", "name": "c1", "role": "coordinator"}
        assert "FollowUpOpened" in [e["type"] for e in intake_trail]
        view = (await followup.http.get(f"/cases/{case_id}")).json()
        assert view["follow_up_cases"] == [new_case]
        found = await followup.http.get("/cases", params={"stage": "follow_up_scheduled"})
        rows = found.json()["items"]
        assert [(r["case_id"], r["outcomes"]) for r in rows] == [(case_id, 1)]

        messages = await stream_messages(own_nats, "kring.followup.>")
        published = envelopes(messages)
        assert [e["type"] for e in published] == [
            "nl.kring.follow-up-due.v1",
            "nl.kring.outcome-recorded.v1",
            "nl.kring.follow-up-conference-requested.v1",
        ]
        assert published[1]["data"]["kind"] == "coordinator_call"
        assert published[2]["data"]["new_case_id"] == new_case
        assert "Wim" not in str(published) and "finances" not in str(published)
