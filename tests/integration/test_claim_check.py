"""The claim check between intake and plans over a real, closed NATS: plans gets the questions
and minimum requirements of an accepted case from intake, never through the stream; nobody but
plans may ask, and nobody but intake may answer."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from services.intake.bootstrap import build as build_intake
from services.intake.settings import IntakeSettings
from services.plans.bootstrap import build as build_plans
from services.plans.settings import PlansSettings
from shared.claims import CLARIFICATION_SUBJECT, ClarificationClaim
from tests.factories import REQUEST_BODY, headers
from tests.harness import envelopes, eventually, running, stream_messages
from tests.servers import NatsServer

MANAGER = headers("rm-anna", "regional_manager")
REQUIREMENT = "Living with this man is not a solution."
CLARIFICATION: dict[str, Any] = {
    "conference_questions": ["Where can Johan grow up safely?", "How do Johan and Wim stay close?"],
    "funding": {"payer": "municipality"},
    "minimum_requirements": [
        {
            "requirement": REQUIREMENT,
            "set_by": {
                "name": "Anna",
                "organisation": "Jeugdzorg",
                "role": "care worker",
                "subject": "jz-anna",
            },
        }
    ],
}


async def test_plans_has_the_clarification_from_intake_and_the_stream_never_does(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    intake_settings = IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path)
    plans_settings = PlansSettings(
        **own_nats.settings("plans"), data_dir=tmp_path, claim_tick_seconds=0.1
    )
    async with (
        running(build_intake(intake_settings)) as intake,
        running(build_plans(plans_settings)) as plans,
    ):
        created = await intake.http.post("/cases", json=REQUEST_BODY, headers=headers())
        case_id = created.json()["case_id"]
        await intake.http.post(f"/cases/{case_id}/clarify", json=CLARIFICATION, headers=MANAGER)
        accepted = await intake.http.post(f"/cases/{case_id}/accept", headers=MANAGER)
        assert accepted.status_code == 200, accepted.text

        async def known() -> bool:
            answer = await plans.http.get(f"/cases/{case_id}/plan")
            return answer.status_code == 200 and answer.json()["clarification_known"]

        await eventually(known, what="plans noted the clarification")
        plan = (await plans.http.get(f"/cases/{case_id}/plan")).json()
        assert [q["question_id"] for q in plan["questions"]] == ["q1", "q2"]
        [requirement] = plan["minimum_requirements"]
        assert requirement["text"] == REQUIREMENT and requirement["setter_signs"]
        # Intake's access log has plans' read of the case, as a service.
        reads = (await intake.http.get(f"/cases/{case_id}/access-log")).json()["items"]
        assert [(r["subject"], r["role"], r["what"]) for r in reads] == [
            ("plans", "system", "clarification")
        ]
    stream = json.dumps(envelopes(await stream_messages(own_nats)))
    assert REQUIREMENT not in stream and "Johan" not in stream and "jz-anna" not in stream


@pytest.mark.parametrize("identity", ["coordination", "followup", "analyst", "operator", "admin"])
async def test_only_plans_may_ask_intake_for_a_clarification(
    own_nats: NatsServer, tmp_path: Path, identity: str
) -> None:
    settings = IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path)
    async with running(build_intake(settings)):
        asked = ClarificationClaim(case_id=uuid.uuid4()).model_dump_json().encode()
        plans = await own_nats.connect("plans")
        other = await own_nats.connect(identity)
        try:

            async def answered() -> bool:
                try:
                    await plans.request(CLARIFICATION_SUBJECT, asked, timeout=1)
                except (NoRespondersError, NatsTimeout):
                    return False
                return True

            await eventually(answered, what="intake answering claims")
            # The server drops the request: no answer ever comes.
            with pytest.raises((NoRespondersError, NatsTimeout)):
                await other.request(CLARIFICATION_SUBJECT, asked, timeout=1)
        finally:
            await plans.close()
            await other.close()


async def test_nobody_but_intake_may_answer_a_clarification(own_nats: NatsServer) -> None:
    """A service that subscribed to the claim subject could hand plans a made-up requirement:
    the server refuses the subscription, so the subscriber never hears a request."""
    impostor = await own_nats.connect("coordination")
    plans = await own_nats.connect("plans")
    heard: list[bytes] = []

    async def hear(message: Any) -> None:
        heard.append(message.data)

    try:
        await impostor.subscribe(CLARIFICATION_SUBJECT, cb=hear)
        await impostor.flush()
        asked = ClarificationClaim(case_id=uuid.uuid4()).model_dump_json().encode()
        with pytest.raises((NoRespondersError, NatsTimeout)):
            await plans.request(CLARIFICATION_SUBJECT, asked, timeout=1)
        await asyncio.sleep(0)
        assert heard == []
    finally:
        await impostor.close()
        await plans.close()
