"""Erasure over a real NATS: intake erases a case and every follower erases it too; a case
erased before its events left intake is never published, only its erasure is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.coordination.bootstrap import build as build_coordination
from services.coordination.settings import CoordinationSettings
from services.intake.bootstrap import build as build_intake
from services.intake.settings import IntakeSettings
from tests.factories import CLARIFICATION, REQUEST_BODY, headers
from tests.harness import Running, envelopes, eventually, running, stream_messages
from tests.servers import NatsServer

MANAGER = headers("rm-anna", "regional_manager")


async def accepted_case(intake: Running) -> str:
    created = await intake.http.post("/cases", json=REQUEST_BODY, headers=headers())
    case_id: str = created.json()["case_id"]
    await intake.http.post(f"/cases/{case_id}/clarify", json=CLARIFICATION, headers=MANAGER)
    assert (await intake.http.post(f"/cases/{case_id}/accept", headers=MANAGER)).status_code == 200
    return case_id


async def status(service: Running, path: str) -> int:
    return (await service.http.get(path)).status_code


async def test_an_erasure_in_intake_erases_the_case_downstream(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    intake_settings = IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path)
    coordination_settings = CoordinationSettings(
        **own_nats.settings("coordination"), data_dir=tmp_path
    )
    async with (
        running(build_intake(intake_settings)) as intake,
        running(build_coordination(coordination_settings)) as coordination,
    ):
        await coordination.http.post(
            "/coordinators",
            json={"coordinator_id": "c1", "regions": ["Utrecht"], "languages": ["nl"]},
            headers=MANAGER,
        )
        case_id = await accepted_case(intake)

        async def assigned() -> bool:
            response = await coordination.http.get(f"/cases/{case_id}")
            return response.status_code == 200 and bool(response.json()["coordinator_ids"])

        await eventually(assigned, what="the case assigned")

        refused = await intake.http.post(
            f"/cases/{case_id}/erase",
            json={"reason": "requested_by_person"},
            headers=headers("ria", "requester"),
        )
        assert refused.status_code == 403  # a requester may not: who may, not the state
        assert "the role regional_manager or the role operator" in refused.json()["detail"]
        bad = await intake.http.post(
            f"/cases/{case_id}/erase", json={"reason": "because"}, headers=MANAGER
        )
        assert bad.status_code == 422 and "reason" in bad.text
        erased = await intake.http.post(
            f"/cases/{case_id}/erase", json={"reason": "requested_by_person"}, headers=MANAGER
        )
        assert erased.status_code == 200, erased.text

        async def gone_downstream() -> bool:
            return await status(coordination, f"/cases/{case_id}") == 410

        await eventually(gone_downstream, what="coordination erased the case")
        assert await status(intake, f"/cases/{case_id}") == 410
        for service in (intake, coordination):
            [entry] = (await service.http.get(f"/cases/{case_id}/history")).json()
            assert entry["type"] == "CaseErased"
        pool = (await coordination.http.get("/coordinators")).json()["items"]
        assert pool[0]["open_cases"] == 0
        again = await intake.http.post(
            f"/cases/{case_id}/erase", json={"reason": "other"}, headers=MANAGER
        )
        assert again.status_code == 410

    mine = [e for e in envelopes(await stream_messages(own_nats)) if e["subject"] == case_id]
    assert [e["type"] for e in mine][-1] == "nl.kring.case-erased.v1"
    assert mine[-1]["data"]["reason"] == "requested_by_person"


async def test_a_case_erased_before_it_was_published_never_reaches_the_stream(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    settings = IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path)
    own_nats.stop()  # intake keeps storing; its relay waits
    async with running(build_intake(settings)) as intake:
        case_id = await accepted_case(intake)
        erased = await intake.http.post(
            f"/cases/{case_id}/erase", json={"reason": "unlawfully_processed"}, headers=MANAGER
        )
        assert erased.status_code == 200
        own_nats.start()

        async def published() -> list[dict[str, Any]]:
            messages = envelopes(await stream_messages(own_nats))
            return [e for e in messages if e["subject"] == case_id]

        async def erasure_published() -> bool:
            return any(e["type"] == "nl.kring.case-erased.v1" for e in await published())

        await eventually(erasure_published, timeout=30, what="the erasure published")
        assert [e["type"] for e in await published()] == ["nl.kring.case-erased.v1"]
        assert "Utrecht" not in json.dumps(await published())


async def test_every_service_answers_410_for_an_erased_case_it_never_held(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    """A request erased before acceptance: only intake ever held it. Coordination, plans and
    followup record the erasure all the same, and from then on tell "erased" (410) from
    "never existed" (404) as intake does."""
    from services.followup.bootstrap import build as build_followup
    from services.followup.settings import FollowupSettings
    from services.plans.bootstrap import build as build_plans
    from services.plans.settings import PlansSettings

    def settings(cls: Any, identity: str) -> Any:
        return cls(**own_nats.settings(identity), data_dir=tmp_path)

    async with (
        running(build_intake(settings(IntakeSettings, "intake"))) as intake,
        running(build_coordination(settings(CoordinationSettings, "coordination"))) as coord,
        running(build_plans(settings(PlansSettings, "plans"))) as plans,
        running(build_followup(settings(FollowupSettings, "followup"))) as followup,
    ):
        created = await intake.http.post("/cases", json=REQUEST_BODY, headers=headers())
        case_id = created.json()["case_id"]
        never = "00000000-0000-4000-8000-000000000001"
        erased = await intake.http.post(
            f"/cases/{case_id}/erase", json={"reason": "requested_by_person"}, headers=MANAGER
        )
        assert erased.status_code == 200, erased.text
        others = {"coordination": coord, "plans": plans, "followup": followup}

        async def erased_everywhere() -> bool:
            for service in others.values():
                state = (await service.http.get(f"/cases/{case_id}/erasure")).json()
                if not state["erased"]:
                    return False
            return True

        await eventually(erased_everywhere, what="every service recorded the erasure")
        for name, service in {"intake": intake, **others}.items():
            state = (await service.http.get(f"/cases/{case_id}/erasure")).json()
            assert state["known"] is (name == "intake"), name
            assert await status(service, f"/cases/{case_id}") == 410, name
            assert await status(service, f"/cases/{never}") == 404, name
        assert await status(plans, f"/cases/{case_id}/plan") == 410
        assert await status(plans, f"/cases/{case_id}/plan/document.pdf") == 410
        assert await status(coord, f"/cases/{case_id}/participants") == 410
        refused = await coord.http.post(
            f"/cases/{case_id}/contact", headers=headers("c1", "coordinator")
        )
        assert refused.status_code == 410
