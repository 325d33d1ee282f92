"""An erasure takes the follow-up cases along: a follow-up case copies the people of the case it
follows, so erasing the one and keeping the other would keep the family on record. On a real
SQLite store, through intake's own policy for opening follow-ups."""

from __future__ import annotations

import itertools
import json
import sqlite3
import uuid
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.intake.app import IntakeApplication
from services.intake.bus import translate
from shared.erasure import CaseErasedError, ErasureReason
from shared.events import CaseErased, FollowUpConferenceRequested
from tests.factories import acted, delivered
from tests.unit.test_erasure import MANAGER, submitted

_positions = itertools.count(1)


def open_follow_up(intake: IntakeApplication, case_id: uuid.UUID) -> uuid.UUID:
    """Followup asked for a follow-up conference: intake opens the linked case."""
    new_case = uuid.uuid4()
    requested = FollowUpConferenceRequested(
        case_id=case_id,
        model="family",
        new_case_id=new_case,
        requested_at=datetime(2026, 9, 1, tzinfo=UTC),
    )
    assert intake.process(delivered(requested, next(_positions), origin="followup"))
    return new_case


def erasures_published(intake: IntakeApplication) -> list[CaseErased]:
    notifications = intake.recorder.select_notifications(start=None, limit=1000)
    events = []
    for notification in notifications:
        try:
            event = translate(intake.mapper.to_domain_event(notification))
        except CaseErasedError:
            continue
        if isinstance(event, CaseErased):
            events.append(event)
    return events


def test_erasing_a_case_erases_every_follow_up_opened_from_it_each_recorded(
    make_app: Any,
) -> None:
    intake = make_app(IntakeApplication)
    case_id = submitted(intake)
    follow_up = open_follow_up(intake, case_id)
    next_one = open_follow_up(intake, follow_up)  # a follow-up of the follow-up
    other = submitted(intake)

    erasure = intake.erase_case(case_id, ErasureReason.REQUESTED_BY_PERSON, MANAGER)

    assert erasure.follow_ups == [follow_up, next_one]
    for gone in (case_id, follow_up, next_one):
        with pytest.raises(CaseErasedError):
            intake.get(gone)
    assert intake.get(other).region == "Utrecht"
    log = intake.erasure_log().erased
    assert log[case_id]["erased_with"] is None
    assert log[follow_up]["erased_with"] == log[next_one]["erased_with"] == case_id
    assert {log[c]["actor"]["id"] for c in (case_id, follow_up, next_one)} == {MANAGER.subject}
    for gone in (follow_up, next_one):
        [entry] = intake.history(gone)
        assert (entry.type, entry.actor) == ("CaseErased", acted(MANAGER))
    # Every service hears of each: one CaseErased per case on the stream.
    published = erasures_published(intake)
    assert [e.case_id for e in published] == [case_id, follow_up, next_one]
    assert {e.reason for e in published} == {"requested_by_person"}
    assert [row["case_id"] for row in intake.views.cases(MANAGER)] == [other]


def test_a_follow_up_case_is_erased_alone_and_the_case_it_follows_keeps_its_link(
    make_app: Any,
) -> None:
    intake = make_app(IntakeApplication)
    case_id = submitted(intake)
    follow_up = open_follow_up(intake, case_id)

    assert intake.erase_case(follow_up, ErasureReason.OTHER, MANAGER).follow_ups == []

    with pytest.raises(CaseErasedError):
        intake.get(follow_up)
    original = intake.get(case_id)
    assert original.follow_ups == [follow_up]  # an id, naming no one
    # Erased later, the case it follows erases nothing twice.
    assert intake.erase_case(case_id, ErasureReason.OTHER, MANAGER).follow_ups == []
    assert [e.case_id for e in erasures_published(intake)] == [follow_up, case_id]


def test_a_follow_up_opened_while_the_case_is_erased_goes_with_it(make_app: Any) -> None:
    intake = make_app(IntakeApplication)
    case_id = submitted(intake)
    first = open_follow_up(intake, case_id)
    late: list[uuid.UUID] = []
    traverse = intake._with_follow_ups

    def traverse_then_race(case: Any) -> Any:
        found = traverse(case)
        if not late:  # between reading the case and saving its erasure, a follow-up opens
            late.append(open_follow_up(intake, case_id))
        return found

    intake._with_follow_ups = traverse_then_race  # type: ignore[method-assign]
    erasure = intake.erase_case(case_id, ErasureReason.OTHER, MANAGER)

    assert erasure.follow_ups == [first, *late]
    for gone in (case_id, first, *late):
        with pytest.raises(CaseErasedError):
            intake.get(gone)


def test_an_erasure_stored_before_erased_with_existed_reads_as_erased_alone(
    make_app: Any, tmp_path: Path
) -> None:
    intake = make_app(IntakeApplication)
    case_id = submitted(intake)
    intake.erase_case(case_id, ErasureReason.OTHER, MANAGER)

    # The erasure log is under the service's key only (none here): its state is plain JSON.
    database = tmp_path / "intake.sqlite"
    with closing(sqlite3.connect(database)) as db, db:
        [(rowid, state)] = db.execute(
            "SELECT rowid, state FROM stored_events WHERE topic = ?",
            ("shared.erasure:ErasureLog.CaseErased",),
        ).fetchall()
        stored = json.loads(state)
        assert (stored["class_version"], stored["erased_with"]) == (2, None)
        del stored["class_version"], stored["erased_with"]  # as version 1 stored it
        db.execute(
            "UPDATE stored_events SET state = ? WHERE rowid = ?",
            (json.dumps(stored).encode(), rowid),
        )
    intake.close()
    again = make_app(IntakeApplication)
    assert again.erasure_log().erased[case_id]["erased_with"] is None
    with pytest.raises(CaseErasedError):
        again.get(case_id)
