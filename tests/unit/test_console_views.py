"""What the console's pages show, made from the services' answers, and its forms turned into
the bodies the services take: no I/O, milliseconds."""

from __future__ import annotations

import uuid

import pytest
from starlette.requests import Request

from services.console import forms, views
from services.console.auth import Session
from services.console.web import Form, Page, Renderer
from tests.factories import principal


def form(**fields: str | list[str]) -> Form:
    return Form({k: v if isinstance(v, list) else [v] for k, v in fields.items()})


def test_a_new_version_says_what_it_changed() -> None:
    first = {
        "agreements": [
            {
                "id": "a1",
                "who": ["p1"],
                "what": "Johan lives with oma",
                "where": None,
                "when": None,
            },
            {"id": "a2", "who": ["p3"], "what": "Piet drives", "where": None, "when": None},
        ],
        "if_something_does_not_work": "call",
        "watched_by": "p3",
    }
    second = {
        "agreements": [
            {
                "id": "a1",
                "who": ["p1", "p2"],
                "what": "Johan lives with oma",
                "where": None,
                "when": {"on": None, "recurring": "every day"},
            },
            {
                "id": "a3",
                "who": ["p2"],
                "what": "Oma goes to the café",
                "where": None,
                "when": None,
            },
        ],
        "if_something_does_not_work": "call the coordinator",
        "watched_by": "p3",
    }
    said = [(c.message, c.values) for c in views.plan_changes(first, second)]
    assert (
        "agreement %(id)s added: %(what)s",
        {"id": "a3", "what": "Oma goes to the café"},
    ) in said
    assert ("agreement %(id)s removed", {"id": "a2"}) in said
    assert ("agreement %(id)s changed: %(fields)s", {"id": "a1", "fields": "who, when"}) in said
    assert ("what happens if something does not work changed", {}) in said
    assert not any("watches" in message for message, _ in said)
    assert [c.message for c in views.plan_changes(second, second)] == ["nothing changed"]
    assert views.plan_changes(None, first)[0].values == {"count": 2}
    plan = {"versions": [{"version": 1, "content": first}, {"version": 2, "content": second}]}
    shown = views.versions_with_changes(plan)
    assert [v["version"] for v in shown] == [2, 1]  # newest first


def test_the_board_counts_every_case_and_filters_on_the_stage_shown() -> None:
    lists = {
        "intake": [
            {"case_id": "a", "model": "family", "region": "Utrecht", "stage": "accepted"},
            {"case_id": "b", "model": "group", "region": "Utrecht", "stage": "submitted"},
        ],
        "coordination": [
            {"case_id": "a", "stage": "preparing", "coordinator_ids": ["c1"], "overdue": True},
        ],
    }
    board = views.board(lists, {"stage": "accepted"})
    assert board.rows == []  # a is shown as preparing, the furthest a service took it
    assert board.total == 2 and dict(board.counts) == {"submitted": 1, "preparing": 1}
    assert [c.case_id for c in views.board(lists, {"overdue": "yes"}).rows] == ["a"]
    assert [c.case_id for c in views.board(lists, {"overdue": "no"}).rows] == ["b"]
    assert [c.case_id for c in views.board(lists, {"coordinator": "c1"}).rows] == ["a"]
    assert board.coordinators == ["c1"] and board.regions == ["Utrecht"]


def test_blank_rows_are_left_out_and_the_plan_s_when_is_one_or_the_other() -> None:
    body = forms.plan_body(
        form(
            a0_id="a1",
            a0_who=["p1", "p2"],
            a0_what="Johan lives with oma",
            a0_when="recurring",
            a0_recurring="every day",
            a0_on="2030-01-01",
            a0_answers=["q1", "q2"],
            a1_who=["p3"],
            a1_what="Piet drives",
            a1_when="on",
            a1_on="2030-02-01",
            a2_who=[],
            a2_what="",
            a2_when="none",
            s0_organisation="",
            s0_what="",
            if_something_does_not_work="call",
            watched_by="p3",
            next_meeting_on="",
        )
    )
    assert body["agreements"] == [
        {
            "id": "a1",
            "who": ["p1", "p2"],
            "what": "Johan lives with oma",
            "where": None,
            "answers": ["q1", "q2"],
            "when": {"recurring": "every day"},
        },
        {
            "who": ["p3"],
            "what": "Piet drives",
            "where": None,
            "answers": [],
            "when": {"on": "2030-02-01"},
        },
    ]
    assert body["professional_support"] == [] and body["next_meeting_on"] is None
    clarified = forms.clarification_body(
        form(
            q0_text="Where can Johan grow up safely?",
            q1_text="",
            m0_requirement="",
            payer="municipality",
            coordinators_needed="two",
        )
    )
    assert clarified["conference_questions"] == ["Where can Johan grow up safely?"]
    assert clarified["minimum_requirements"] == []
    assert clarified["coordinators_needed"] == "two"  # not a number: intake says so, by field
    # One more row when asked, never more than the most a form shows.
    assert forms.rows(form(more="a", a0_what="x", a1_what="y"), "a", 1) == 3
    assert forms.rows(None, "a", 2) == 3
    assert forms.rows(form(more="a", **{f"a{i}_what": "x" for i in range(60)}), "a", 60) == 50


def test_only_contacts_that_came_due_and_wait_for_an_outcome_are_offered() -> None:
    follow_up = {
        "timers": [
            {
                "timer_id": "coordinator_call",
                "kind": "coordinator_call",
                "fired_at": "t",
                "outcome_recorded": True,
            },
            {
                "timer_id": "research",
                "kind": "research",
                "fired_at": "t",
                "outcome_recorded": False,
            },
            {"timer_id": "research-2", "kind": "research", "fired_at": None},
            {"timer_id": "next_meeting_reminder", "kind": "next_meeting_reminder", "fired_at": "t"},
            # The family's own meeting is recorded as a meeting (followup refuses it as an
            # outcome), due or not yet.
            {"timer_id": "next_meeting", "kind": "next_meeting", "fired_at": "t"},
            {"timer_id": "next_meeting-2", "kind": "next_meeting", "fired_at": None},
            {"timer_id": "next_meeting-3", "kind": "next_meeting", "outcome_recorded": True},
        ],
        "ratings": {"coordinator_call": [{"by": "professional", "meeting": 7, "plan": None}]},
    }
    assert [t["timer_id"] for t in views.open_contacts(follow_up)] == ["research"]
    assert [t["timer_id"] for t in views.open_meetings(follow_up)] == [
        "next_meeting",
        "next_meeting-2",
    ]
    # Marks: any contact that came due and has none yet (the reminder is nobody's contact).
    assert [t["timer_id"] for t in views.unrated_contacts(follow_up)] == [
        "research",
        "next_meeting",
    ]


def test_the_marks_form_sends_one_entry_per_row_with_a_mark_and_the_meeting_as_typed() -> None:
    form = Form(
        {
            "rating_timer_id": ["research"],
            "r0_by": ["family_network"],
            "r0_meeting": ["8"],
            "r0_plan": [""],
            "r1_by": ["professional"],
            "r1_meeting": [""],
            "r1_plan": [""],
            "r2_by": ["professional"],
            "r2_meeting": [""],
            "r2_plan": ["tien"],
        }
    )
    assert forms.ratings_body(form) == {
        "timer_id": "research",
        "ratings": [
            {"by": "family_network", "meeting": 8, "plan": None},
            {"by": "professional", "meeting": None, "plan": "tien"},  # followup says why not
        ],
    }
    meeting = Form({"held": ["no"], "m_a1": ["kept"], "again_on": ["2027-03-01"]})
    assert forms.meeting_body(meeting, ["a1", "a2"]) == {
        "timer_id": None,
        "held": False,
        "held_on": None,
        "agreements": {"a1": "kept"},
        "revised_plan_wanted": False,
        "next_meeting_on": "2027-03-01",
        "notes": "",
    }


@pytest.mark.parametrize(
    ("language", "said"),
    [
        (
            "nl",
            [
                "Niet gekozen bij de laatste keuze",
                "c-anna</span>: spreekt geen van de talen van de familie",
                "c-bram</span>: niet onafhankelijk voor deze casus",
                "c-cor</span>: voldoet niet aan de wens van de familie over gender",
                "c-dirk</span>: paste, maar anderen gingen voor",
            ],
        ),
        (
            "en",
            [
                "Passed over at the last choice",
                "c-anna</span>: does not speak one of the family&#39;s languages",
                "c-cor</span>: does not meet the family's wish about gender",
            ],
        ),
    ],
)
def test_the_assignment_page_says_why_each_other_coordinator_was_passed_over(
    language: str, said: list[str]
) -> None:
    """The regional manager sees, for each coordinator of the region not taken, the first
    requirement they did not meet, in their language; the page is given nothing more."""
    session = Session("s", principal("rm", "regional_manager"), "t", 1e12, 1e12)
    request = Request(
        {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": []}
    )
    case = {
        "stage": "waiting_for_coordinator",
        "region": "Utrecht",
        "languages": ["nl"],
        "coordinator_ids": [],
        "coordinators_needed": 1,
        "waiting_reason": "nobody fits",
        "coordinator_wishes": {},
        "assignments": [],
        "passed_over": [
            {"coordinator_id": "c-anna", "requirement": "language"},
            {"coordinator_id": "c-bram", "requirement": "independence"},
            {"coordinator_id": "c-cor", "requirement": "wish:gender"},
            {"coordinator_id": "c-dirk", "requirement": "ranked_lower"},
        ],
    }
    response = Renderer().render(
        Page(request, session, language),
        "assign.html",
        case=case,
        case_id=uuid.uuid4(),
        pool=[],
        chosen=[],
        check=None,
        form=None,
        errors={},
    )
    html = bytes(response.body).decode()
    for text in said:
        assert text in html, text
