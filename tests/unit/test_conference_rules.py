"""The three parts of a conference, as each model holds them."""

import pytest

from services.coordination.domain import check_conference_rules
from shared.errors import DomainRuleError

ALL_PARTS = ["information", "plan_making", "presentation"]


def test_family_time_with_only_family_and_network_is_accepted() -> None:
    check_conference_rules(
        "family",
        ALL_PARTS,
        {
            "information": {"family": 5, "professional": 2, "coordinator": 1},
            "plan_making": {"family": 5, "network": 3, "child": 1, "interpreter": 1},
            "presentation": {"family": 5, "professional": 1, "coordinator": 1},
        },
    )


@pytest.mark.parametrize("outsider", ["professional", "expert", "coordinator"])
def test_nobody_from_outside_the_family_is_in_private_family_time(outsider: str) -> None:
    with pytest.raises(DomainRuleError, match=f"private family time.*{outsider}"):
        check_conference_rules("family", ALL_PARTS, {"plan_making": {"family": 4, outsider: 1}})


def test_a_role_recorded_with_zero_people_is_not_present() -> None:
    check_conference_rules("family", ALL_PARTS, {"plan_making": {"family": 4, "professional": 0}})


@pytest.mark.parametrize("model", ["group", "restorative", "learning_circle"])
def test_the_coordinator_chairs_part_two_where_the_model_says_so(model: str) -> None:
    with pytest.raises(DomainRuleError, match="coordinator chairs part two"):
        check_conference_rules(model, ALL_PARTS, {"plan_making": {"victim": 2, "offender": 1}})
    check_conference_rules(
        model,
        ALL_PARTS,
        {"plan_making": {"victim": 2, "offender": 1, "coordinator": 1, "professional": 2}},
    )


def test_attendance_for_a_part_that_did_not_take_place_is_refused() -> None:
    with pytest.raises(DomainRuleError, match="did not take place"):
        check_conference_rules("group", ["information"], {"plan_making": {"coordinator": 1}})
