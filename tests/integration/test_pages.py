"""Lists a page at a time, through the HTTP API: cursors that go through a list exactly once,
and every kind of bad paging refused with 422 naming what is wrong; the caller's scope applied
by the query before a page is cut."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from services.coordination.bootstrap import build as build_coordination
from services.coordination.settings import CoordinationSettings
from services.intake.bootstrap import build
from services.intake.settings import IntakeSettings
from tests.factories import REQUEST_BODY, headers
from tests.harness import running
from tests.servers import NatsServer

UTRECHT = headers("rm-utrecht", "regional_manager", region="Utrecht")
ZEELAND = headers("rm-zeeland", "regional_manager", region="Zeeland")


def loc(response: Any) -> list[list[Any]]:
    return [e["loc"] for e in response.json()["detail"]]


async def test_pages_go_through_a_list_once_each_and_only_what_the_caller_may_see(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    settings = IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path)
    async with running(build(settings)) as intake:
        requester = headers("ria", "requester")
        made: dict[str, list[str]] = {"Utrecht": [], "Zeeland": []}
        # Zeeland's cases come in between Utrecht's: a page cut before the scoping would
        # come back short (or empty) for a manager of Zeeland.
        for n in range(23):
            region = "Zeeland" if n % 6 == 5 else "Utrecht"
            body = REQUEST_BODY | {"region": region}
            created = await intake.http.post("/cases", json=body, headers=requester)
            made[region].append(created.json()["case_id"])

        seen: list[str] = []
        after: str | None = None
        pages = 0
        while True:
            params = {"limit": 5} | ({"after": after} if after else {})
            page = (await intake.http.get("/cases", params=params, headers=UTRECHT)).json()
            pages += 1
            assert page["total"] == len(made["Utrecht"])
            assert len(page["items"]) <= 5
            seen += [row["case_id"] for row in page["items"]]
            after = page["next"]
            if after is None:
                break
        assert seen == made["Utrecht"]  # oldest first, each once
        assert pages == 4  # 19 rows: 5, 5, 5, 4

        zeeland = (await intake.http.get("/cases", params={"limit": 2}, headers=ZEELAND)).json()
        assert [r["case_id"] for r in zeeland["items"]] == made["Zeeland"][:2]
        assert zeeland["total"] == len(made["Zeeland"])
        rest = await intake.http.get(
            "/cases", params={"limit": 2, "after": zeeland["next"]}, headers=ZEELAND
        )
        assert [r["case_id"] for r in rest.json()["items"]] == made["Zeeland"][2:]
        assert rest.json()["next"] is None

        # Filters go with the cursor: the same cursor with another filter is another list.
        first = (await intake.http.get("/cases", params={"limit": 1}, headers=UTRECHT)).json()
        other = await intake.http.get(
            "/cases",
            params={"limit": 1, "after": first["next"], "stage": "submitted"},
            headers=UTRECHT,
        )
        assert other.status_code == 422
        assert loc(other) == [["query", "after"]]
        assert "another list" in other.text

        # The default page is 50 rows; the maximum 500; above it is refused, never cut.
        default = (await intake.http.get("/cases", headers=UTRECHT)).json()
        assert len(default["items"]) == len(made["Utrecht"])
        assert default["next"] is None
        too_many = await intake.http.get("/cases", params={"limit": 501}, headers=UTRECHT)
        assert too_many.status_code == 422
        assert loc(too_many) == [["query", "limit"]]
        for bad in (0, -1, "ten"):
            refused = await intake.http.get("/cases", params={"limit": bad}, headers=UTRECHT)
            assert refused.status_code == 422 and loc(refused) == [["query", "limit"]]


async def test_a_malformed_cursor_or_one_from_another_list_is_refused_naming_it(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    intake_settings = IntakeSettings(**own_nats.settings("intake"), data_dir=tmp_path)
    coordination_settings = CoordinationSettings(
        **own_nats.settings("coordination"), data_dir=tmp_path
    )
    async with (
        running(build(intake_settings)) as intake,
        running(build_coordination(coordination_settings)) as coordination,
    ):
        for n in range(3):
            await coordination.http.post(
                "/coordinators",
                json={"coordinator_id": f"c{n}", "regions": ["Utrecht"], "languages": ["nl"]},
                headers=UTRECHT,
            )
        pool = (await coordination.http.get("/coordinators", params={"limit": 1})).json()
        assert pool["total"] == 3 and pool["next"]
        forged = base64.urlsafe_b64encode(json.dumps([1, "x", [1, "y"]]).encode()).decode()
        for cursor in (
            "garbage-from-a-client",
            "%%%",
            base64.urlsafe_b64encode(b"[1, 2").decode(),
            base64.urlsafe_b64encode(b'{"a": 1}').decode(),
            forged,
            pool["next"],  # the pool's cursor, on intake's case list
            "A" * 1001,  # longer than any cursor
        ):
            refused = await intake.http.get("/cases", params={"after": cursor}, headers=UTRECHT)
            assert refused.status_code == 422, cursor
            assert loc(refused) == [["query", "after"]], cursor
            assert cursor not in refused.text  # never echoed
        # One list's cursor on another list of the same service.
        unassigned = await coordination.http.get(
            "/cases/unassigned", params={"after": pool["next"]}
        )
        assert unassigned.status_code == 422 and loc(unassigned) == [["query", "after"]]
        second = await coordination.http.get(
            "/coordinators", params={"limit": 1, "after": pool["next"]}
        )
        assert [c["coordinator_id"] for c in second.json()["items"]] == ["c1"]
