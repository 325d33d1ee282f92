"""Every figure of the analysts' report, on a scenario whose figures are counted by hand
(``tests/analytics_scenario.py`` tells each case's path)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kring.analytics.facts import ERASED_CASE, Fold, Months
from kring.analytics.figures import Collected, GroupBy, answer
from shared.events import CaseErased
from tests.analytics_scenario import scenario
from tests.factories import NOW, delivered


def folded() -> tuple[Fold, Collected]:
    collected = Collected()
    fold = Fold(key=str, sink=collected)
    fold.fold_all(scenario().delivered())
    return fold, collected


def test_every_request_is_counted_with_where_it_ended_up_and_the_erased_one_is_not() -> None:
    fold, collected = folded()
    result = answer(fold, collected)
    figures = result.overall
    assert figures.requests == 12  # A to L; M was erased
    assert (result.erased, result.without_request, fold.duplicates) == (1, 0, 1)
    assert dict(figures.outcomes) == {
        "conference": 3,  # A, B, K
        "plan_without_meeting": 1,  # C
        "stopped": 5,  # D, E, F, G, H
        "open": 3,  # I, J, L
    }
    assert figures.share("conference") == pytest.approx(3 / 12)
    assert dict(figures.stop_reasons) == {
        "network_not_willing": 1,  # D
        "withdrawn_before_acceptance": 2,  # E, F
        "no_coordinator": 1,  # G
        "request_withdrawn": 1,  # H
    }
    assert dict(figures.stop_stages) == {
        "first_contact": 1,  # D
        "submitted": 1,  # E
        "clarified": 1,  # F
        "accepted": 1,  # G
        "coordinator_assigned": 1,  # H
    }


def test_the_funnel_from_request_to_follow_up() -> None:
    figures = answer(*folded()).overall
    assert figures.funnel == [
        ("requested", 12),
        ("accepted", 8),  # A B C D G H I K
        ("coordinator_assigned", 7),  # A B C D H I K
        ("first_contact", 6),  # A B C D I K
        ("plan_made", 4),  # A B K at a conference, C without one
        ("plan_distributed", 4),  # A B C K
        ("followed_up", 3),  # A B K
    ]


def test_lead_times_count_from_the_request_not_from_acceptance() -> None:
    times = answer(*folded()).overall.lead_times
    assert sorted(times["to_first_contact"].values) == [1, 1, 2, 3, 3, 4]  # D K B A C I
    assert times["to_first_contact"].median == 2.5
    assert sorted(times["to_conference"].values) == [18, 28, 42]  # K A B
    assert times["to_conference"].minimum == 18
    assert times["to_conference"].share_between(42, 70) == pytest.approx(1 / 3)
    assert sorted(times["to_plan_distributed"].values) == [16, 20, 30, 47]  # C K A B
    assert times["to_plan_distributed"].median == 25


def test_attendance_children_outcomes_ratings_and_follow_up_conferences() -> None:
    figures = answer(*folded()).overall
    assert sorted(figures.attended.values) == [5, 5, 11]  # B (read from version 1), K, A
    assert figures.attended.mean == 7
    assert sum(figures.children.values) == 3  # two children at A, a pupil at K
    assert figures.conferences_with_children == 2
    assert dict(figures.agreements["coordinator_call"]) == {
        "kept": 3,
        "partly_kept": 1,
        "not_kept": 1,
    }
    assert dict(figures.agreements["research"]) == {"kept": 2, "not_kept": 1}
    assert dict(figures.agreements["all"]) == {"kept": 5, "partly_kept": 1, "not_kept": 2}
    assert figures.contacts == {"all": (3, 4), "coordinator_call": (2, 2), "research": (1, 2)}
    ratings = {key: spread.mean for key, spread in figures.ratings.items()}
    assert ratings == {
        ("family_network", "meeting"): 8.5,
        ("family_network", "plan"): 8.5,
        ("professional", "meeting"): 7.5,
        ("professional", "plan"): 7.0,
    }
    assert figures.follow_up_conferences_requested == 1  # A
    assert figures.requests_for_a_follow_up == 1  # L
    assert figures.monthly == {
        "2026-03": (10, 1, 1),  # requests A-J; A held; C's plan
        "2026-04": (1, 2, 3),  # K; B and K held; plans of A, B, K
        "2026-06": (1, 0, 0),  # L
    }


def test_a_window_chooses_the_requests_made_in_it_and_groups_split_them() -> None:
    fold, collected = folded()
    april = datetime(2026, 4, 1, tzinfo=UTC)
    result = answer(fold, collected, since=april, by=GroupBy.MODEL)
    assert result.overall.requests == 2  # K, L
    assert {name: f.requests for name, f in result.groups.items()} == {
        "family": 1,
        "learning_circle": 1,
    }
    by_region = answer(fold, collected, by=GroupBy.REGION).groups
    assert {name: f.requests for name, f in by_region.items()} == {
        "Amsterdam": 2,  # C D
        "Utrecht": 7,  # A B E H I J L
        "Zwolle": 3,  # F G K
    }
    by_month = answer(fold, collected, until=april, by=GroupBy.MONTH).groups
    assert {name: f.requests for name, f in by_month.items()} == {"2026-03": 10}
    assert by_month["2026-03"].outcomes["conference"] == 2  # A, B


def test_the_same_events_in_another_order_give_the_same_figures() -> None:
    events = scenario().delivered()
    forwards, backwards = Collected(), Collected()
    one = Fold(key=lambda case_id: case_id.hex, sink=forwards).fold_all(events)
    other = Fold(key=lambda case_id: case_id.hex, sink=backwards).fold_all(reversed(events))
    # Backwards, the erasure comes first: nothing of M is taken in after it.
    assert one.cases == other.cases
    assert answer(one, forwards).overall == answer(other, backwards).overall


def test_months_follow_the_users_calendar() -> None:
    months = Months()
    # 31 March 23:30 UTC is already April in Amsterdam (summer time, UTC+2).
    assert months.of(datetime(2026, 3, 31, 23, 30, tzinfo=UTC)) == "2026-04"
    assert months.of(datetime(2026, 1, 31, 22, 59, tzinfo=UTC)) == "2026-01"
    assert months.of(datetime(2026, 1, 31, 23, 0, tzinfo=UTC)) == "2026-02"


def test_a_follow_up_of_an_erased_case_counts_but_no_longer_names_it() -> None:
    known = scenario()
    erased_a = CaseErased(
        case_id=known.ids["A"], model="family", reason="requested_by_person", erased_at=NOW
    )
    events = [*known.delivered(), delivered(erased_a, 900)]
    collected = Collected()
    fold = Fold(key=str, sink=collected).fold_all(events)
    assert fold.cases[str(known.ids["L"])].follow_up_of == ERASED_CASE
    figures = answer(fold, collected).overall
    assert figures.requests == 11  # A is gone too
    assert figures.requests_for_a_follow_up == 1  # L still is one
    assert sorted(figures.attended.values) == [5, 5]  # A's conference no longer counts
