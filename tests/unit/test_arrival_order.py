"""Followup's list does not depend on the order it heard of a case: the region (from intake),
the coordinator (from coordination) and the follow-up (from plans) may come in any order, and
the case is listed for its region's manager and its coordinator all the same."""

from __future__ import annotations

import uuid
from typing import Any

from services.followup.app import FollowupApplication
from tests.factories import (
    coordinator_assigned,
    delivered,
    plan_distributed,
    principal,
    request_received,
)


def test_a_follow_up_heard_before_its_region_is_listed_for_that_regions_manager(
    make_app: Any,
) -> None:
    manager, coordinator = principal("rm"), principal("c1", "coordinator")
    in_order, out_of_order = uuid.uuid4(), uuid.uuid4()
    first: FollowupApplication = make_app(FollowupApplication)
    position = iter(range(1, 100))

    def hear(event: Any) -> None:
        first.process(delivered(event, next(position)))

    hear(request_received(in_order))
    hear(coordinator_assigned(in_order))
    hear(plan_distributed(in_order))
    # The other way round: the plan first, then the region, then the coordinator.
    hear(plan_distributed(out_of_order))
    assert [r["case_id"] for r in first.views.cases(manager)] == [in_order]
    hear(request_received(out_of_order))
    hear(coordinator_assigned(out_of_order))
    assert [r["case_id"] for r in first.views.cases(manager)] == [in_order, out_of_order]
    assert [r["case_id"] for r in first.views.cases(coordinator)] == [in_order, out_of_order]
    rows = first.views.dump()
    first.views.rebuild()
    assert first.views.dump() == rows
