"""What a view shows does not depend on the order in which a service heard of things: a
relation declared before coordination heard of the case shows on the case as one declared after
it (``tests/unit/test_arrival_order.py``: followup's list)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from services.coordination.bootstrap import build as build_coordination
from services.coordination.settings import CoordinationSettings
from tests.factories import delivered, headers, request_received
from tests.harness import running
from tests.servers import NatsServer

MANAGER = headers("rm", "regional_manager", region="Utrecht")


async def test_a_relation_declared_before_the_case_arrives_is_shown_like_one_after(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    settings = CoordinationSettings(**own_nats.settings("coordination"), data_dir=tmp_path)
    async with running(build_coordination(settings)) as coordination:
        http, app = coordination.http, coordination.app
        for coordinator_id in ("ana", "bob"):
            joined = await http.post(
                "/coordinators",
                json={
                    "coordinator_id": coordinator_id,
                    "regions": ["Utrecht"],
                    "languages": ["nl"],
                    "capacity": 5,
                },
                headers=MANAGER,
            )
            assert joined.status_code == 201, joined.text

        async def declare(coordinator_id: str, case_id: uuid.UUID) -> Any:
            return await http.post(
                f"/coordinators/{coordinator_id}/relations",
                json={"case_id": str(case_id), "kind": "family_of_party", "note": "an aunt"},
                headers=MANAGER,
            )

        before = uuid.uuid4()
        declared = await declare("ana", before)
        assert declared.json()["case_known"] is False
        app.process(delivered(request_received(before), 1))
        after = request_received()
        app.process(delivered(after, 2))
        holder = app.get(after.case_id).coordinator_ids[0]
        assert (await declare(holder, after.case_id)).json()["case_known"] is True

        early = (await http.get(f"/cases/{before}", headers=MANAGER)).json()
        late = (await http.get(f"/cases/{after.case_id}", headers=MANAGER)).json()
        assert early["relations"] == [{"coordinator_id": "ana", "kind": "family_of_party"}]
        assert late["relations"] == [{"coordinator_id": holder, "kind": "family_of_party"}]
        # Both were honoured, too: neither coordinator holds the case they are related to.
        assert "ana" not in early["coordinator_ids"]
        assert holder not in late["coordinator_ids"]
        # The note is shown nowhere.
        assert "aunt" not in str(early) + str(late)
