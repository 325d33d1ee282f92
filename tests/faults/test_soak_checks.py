"""The soak's checks themselves: given stores, a stream and dead letters that are wrong in one
way each, each check says so (a check that cannot fail proves nothing)."""

from __future__ import annotations

import uuid

from shared.consumer import durable_name
from tests.faults.poison import MALFORMED_JSON, poison
from tests.faults.soak import CONSUMERS, OnStream, Parked, Recorded, Store, analyse

CASE = str(uuid.uuid4())
RECEIVED = "nl.kring.request-received.v1"
ASSIGNED = "nl.kring.coordinator-assigned.v1"
IDLE = {durable_name(s, o): 0 for s, o in CONSUMERS}


def stores(received: int = 1, noted: int = 1) -> dict[str, Store]:
    """One case: intake published RequestReceived (position 3); coordination received it and
    published CoordinatorAssigned (position 2); plans noted both; followup noted both too (the
    case's region and coordinators: who may see its follow-up)."""
    return {
        "intake": Store("intake", [Recorded(3, CASE, "Request.Accepted", (RECEIVED, CASE))], []),
        "coordination": Store(
            "coordination",
            [Recorded(1, CASE, "CoordinatedCase.Received", None)] * received
            + [Recorded(2, CASE, "CoordinatedCase.CoordinatorAssigned", (ASSIGNED, CASE))],
            [("intake", 3)],
        ),
        "plans": Store(
            "plans",
            [Recorded(1, CASE, "Plan.RequestNoted", None)] * noted
            + [Recorded(2, CASE, "Plan.CoordinatorNoted", None)],
            [("intake", 3), ("coordination", 2)],
        ),
        "followup": Store(
            "followup",
            [
                Recorded(1, CASE, "CaseScope.RegionNoted", None),
                Recorded(2, CASE, "CaseScope.CoordinatorsNoted", None),
            ],
            [("intake", 3), ("coordination", 2)],
        ),
    }


def on_stream(*ids: str) -> list[OnStream]:
    kinds = {"intake:3": RECEIVED, "coordination:2": ASSIGNED}
    return [OnStream(i, i.split(":")[0], int(i.split(":")[1]), kinds[i], CASE, None) for i in ids]


def test_all_well_is_clean() -> None:
    checks = analyse(stores(), on_stream("intake:3", "coordination:2"), [], IDLE)
    assert checks.clean
    assert (checks.expected, checks.checked, checks.reactions_checked) == (2, 2, 3)


def test_an_event_stored_but_not_on_the_stream_is_lost() -> None:
    checks = analyse(stores(), on_stream("intake:3"), [], IDLE)
    assert checks.lost == ["coordination:2"]
    assert not checks.clean


def test_one_origin_and_position_twice_on_the_stream_is_a_duplicate() -> None:
    checks = analyse(stores(), on_stream("intake:3", "coordination:2", "intake:3"), [], IDLE)
    assert checks.duplicated == ["intake:3"]
    assert not checks.clean


def test_a_reaction_recorded_twice_is_applied_twice_and_one_missing_is_missing() -> None:
    twice = analyse(stores(received=2), on_stream("intake:3", "coordination:2"), [], IDLE)
    assert [a.split(" for ")[0] for a in twice.applied_twice] == [
        "coordination CoordinatedCase.Received"
    ]
    missing = analyse(stores(noted=0), on_stream("intake:3", "coordination:2"), [], IDLE)
    assert [m.split(" for ")[0] for m in missing.missing] == ["plans Plan.RequestNoted"]
    assert not twice.clean and not missing.clean


def test_a_stream_message_a_follower_has_not_tracked_is_a_disagreement() -> None:
    behind = stores()
    behind["plans"].tracking.remove(("coordination", 2))
    checks = analyse(behind, on_stream("intake:3", "coordination:2"), [], IDLE)
    assert checks.untracked == ["plans has not tracked coordination:2"]
    assert not checks.converged


def test_a_valid_event_dead_lettered_or_poison_not_parked_is_wrong() -> None:
    bad = poison(MALFORMED_JSON, 1)
    consumer = durable_name("coordination", "intake")
    wrong = Parked(consumer, "processing-failed:RuntimeError", b"{}")
    checks = analyse(stores(), on_stream("intake:3", "coordination:2"), [wrong], IDLE)
    assert checks.dead_letters_wrong and not checks.clean
    poisoned = [
        *on_stream("intake:3", "coordination:2"),
        OnStream(bad.msg_id, "", 0, "", "", bad.msg_id),
    ]
    once = [Parked(consumer, bad.reason, bad.body)]
    # Intake's poison meets coordination's, plans' and followup's consumers: one parked copy is
    # too few.
    checks = analyse(stores(), poisoned, once, IDLE, [bad])
    assert (checks.dead_letters, checks.dead_letters_expected) == (1, 3)
    assert not checks.clean
    every = [
        *once,
        Parked(durable_name("plans", "intake"), bad.reason, bad.body),
        Parked(durable_name("followup", "intake"), bad.reason, bad.body),
    ]
    assert analyse(stores(), poisoned, every, IDLE, [bad]).clean
