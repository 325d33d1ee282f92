"""Erasure on a real SQLite store: each case's events under a key of its own, shredded to erase
the case; the erasure itself stays on the record; nothing about the case is stored again."""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, Mapper

from services.coordination.app import CoordinationApplication
from services.coordination.pool import RelationNotes
from services.followup.app import FollowupApplication
from services.followup.domain import Contact, Schedule
from services.intake.app import IDEMPOTENT_SUBMISSION, IntakeApplication
from services.intake.domain import Request
from services.plans.app import PlansApplication
from shared.clock import ManualClock
from shared.erasure import CASE_KEY_PREFIX, CaseErasedError, ErasureReason
from shared.errors import CaseNotFoundError, NotPermittedError
from shared.events import CaseErased
from tests.factories import (
    CLARIFICATION,
    NOW,
    REGIONS,
    REQUEST_BODY,
    acted,
    delivered,
    plan_distributed,
    principal,
    request_received,
)
from tests.unit.test_plans_rules import COORDINATOR, content, held_case

MANAGER = principal("rm-anna", "regional_manager", regions=REGIONS)
REQUESTER = principal("ria", "requester")


def case_erased(case_id: uuid.UUID, model: str = "family") -> CaseErased:
    return CaseErased(case_id=case_id, model=model, reason="requested_by_person", erased_at=NOW)


def submitted(intake: IntakeApplication) -> uuid.UUID:
    request = dict(REQUEST_BODY, description="Johan (8) lives with his grandmother Ria.")
    case_id = intake.submit(REQUESTER, **request)
    intake.clarify(case_id, MANAGER, **CLARIFICATION)
    intake.accept(case_id, MANAGER)
    return case_id


def states(app: Any, tmp_path: Path, case_id: uuid.UUID) -> list[bytes]:
    database = tmp_path / f"{app.name}.sqlite"
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT state FROM stored_events WHERE originator_id = ?", (case_id.hex,)
        ).fetchall()
    return [row[0] for row in rows]


def test_a_case_is_sealed_under_its_own_key_even_without_a_service_key(
    make_app: Any, tmp_path: Path
) -> None:
    intake = make_app(IntakeApplication)
    case_id = submitted(intake)
    sealed = states(intake, tmp_path, case_id)
    assert sealed and all(s.startswith(CASE_KEY_PREFIX) for s in sealed)
    assert not any(b"Johan" in s or b"Ria" in s for s in sealed)
    assert intake.get(case_id).description.startswith("Johan")


def test_an_erased_case_cannot_be_read_and_its_erasure_stays_on_the_record(
    make_app: Any, tmp_path: Path
) -> None:
    clock = ManualClock()
    intake = make_app(IntakeApplication, clock=clock)
    kept, erased = submitted(intake), submitted(intake)
    assert {row["case_id"] for row in intake.views.cases(MANAGER)} == {kept, erased}

    at = intake.erase_case(erased, ErasureReason.REQUESTED_BY_PERSON, MANAGER).at

    with pytest.raises(CaseErasedError):
        intake.get(erased)
    assert states(intake, tmp_path, erased)  # the rows stay; nothing in them can be read
    [entry] = intake.history(erased)
    assert (entry.type, entry.time, entry.actor) == ("CaseErased", at, acted(MANAGER))
    assert [row["case_id"] for row in intake.views.cases(MANAGER)] == [kept]
    assert intake.get(kept).stage.value == "accepted"
    with pytest.raises(CaseErasedError):
        intake.erase_case(erased, ErasureReason.OTHER, MANAGER)  # gone already: 410


def test_only_a_regional_manager_or_an_operator_erases(make_app: Any) -> None:
    intake = make_app(IntakeApplication)
    case_id = submitted(intake)
    with pytest.raises(
        NotPermittedError, match="needs the role regional_manager or the role operator"
    ):
        intake.erase_case(case_id, ErasureReason.OTHER, REQUESTER)
    texel = principal("rm-texel", "regional_manager", regions=("Texel",))
    with pytest.raises(NotPermittedError, match="regional_manager for region Utrecht"):
        intake.erase_case(case_id, ErasureReason.OTHER, texel)
    with pytest.raises(CaseNotFoundError):
        intake.erase_case(uuid.uuid4(), ErasureReason.OTHER, MANAGER)
    operator = principal("op", "operator", regions=())
    intake.erase_case(case_id, ErasureReason.OTHER, operator)
    assert intake.erasure_log().erased[case_id]["actor"] == acted(operator)


def test_erasure_survives_a_restart_and_no_key_is_ever_made_again(
    make_app: Any, tmp_path: Path
) -> None:
    intake = make_app(IntakeApplication)
    case_id = submitted(intake)
    intake.erase_case(case_id, ErasureReason.RETENTION_ENDED, MANAGER)
    intake.close()
    again = make_app(IntakeApplication)
    with pytest.raises(CaseErasedError):
        again.get(case_id)
    with pytest.raises(CaseErasedError):  # sealing anything new for it is refused too
        again.keyring.cipher(case_id, create=True)


def test_a_crash_between_the_erasure_record_and_the_shredding_shreds_at_start(
    make_app: Any,
) -> None:
    intake = make_app(IntakeApplication)
    case_id = submitted(intake)
    log = intake.erasure_log()
    log.record(
        case_id=case_id,
        model="family",
        reason="other",
        at=NOW,
        actor=acted(MANAGER),
        erased_with=None,
    )
    # Stored without the application's hook, as if the process died before it ran.
    intake.recorder.insert_events([intake.mapper.to_stored_event(e) for e in log.collect_events()])
    assert intake.get(case_id)  # the key is still there
    intake.close()
    with pytest.raises(CaseErasedError):
        make_app(IntakeApplication).get(case_id)


def test_events_stored_before_case_keys_existed_are_hidden_once_erased(make_app: Any) -> None:
    intake = make_app(IntakeApplication)
    case_id = submitted(intake)
    # The same request as the first release stored it, under another id: no case key.
    older = uuid.uuid4()
    first_release = Mapper(transcoder=intake.mapper.transcoder)
    unsealed = [first_release.to_stored_event(e) for e in intake.events.get(case_id)]
    intake.recorder.insert_events([dataclasses.replace(s, originator_id=older) for s in unsealed])
    assert intake.repository.get(older).description == intake.get(case_id).description
    intake.erase(older, "other", NOW, acted(MANAGER))
    with pytest.raises(CaseErasedError):
        intake.repository.get(older)


def test_coordination_erases_on_the_bus_frees_the_coordinator_and_stores_nothing_more(
    make_app: Any,
) -> None:
    coordination = make_app(CoordinationApplication)
    coordination.register_coordinator("c1", ["Utrecht"], ["nl"], 5, MANAGER)
    received = request_received()
    case_id = received.case_id
    coordination.process(delivered(received, 1))
    assert coordination.pool().load["c1"] == 1

    assert coordination.process(delivered(case_erased(case_id), 2))
    assert coordination.pool().load["c1"] == 0
    with pytest.raises(CaseErasedError):
        coordination.get(case_id)
    assert [row["case_id"] for row in coordination.views.cases(MANAGER)] == []
    [entry] = coordination.history(case_id)
    assert entry.actor == {"id": "coordination", "role": "system"}
    # A late event of the erased case is tracked and changes nothing; a redelivered erasure too.
    late = request_received(case_id)
    assert coordination.process(delivered(late, 3))
    assert coordination.process(delivered(case_erased(case_id), 2)) is False
    assert coordination.has_processed(delivered(late, 3))
    with pytest.raises(CaseErasedError):
        coordination.get(case_id)


def test_what_a_coordinator_wrote_about_a_relation_goes_with_the_case(
    make_app: Any, tmp_path: Path
) -> None:
    coordination = make_app(CoordinationApplication)
    coordination.register_coordinator("c1", ["Utrecht"], ["nl"], 5, MANAGER)
    coordination.register_coordinator("c2", ["Utrecht"], ["nl"], 5, MANAGER)
    received = request_received()
    case_id = received.case_id
    # Declared before coordination heard of the case, so the note cannot ride on the case.
    coordination.declare_relation("c1", case_id, "family_of_party", "aunt of Johan", MANAGER)
    coordination.process(delivered(received, 1))
    notes_id = RelationNotes.create_id(case_id)
    assert [n["note"] for n in coordination.relation_notes(case_id).notes] == ["aunt of Johan"]
    sealed = states(coordination, tmp_path, notes_id)  # opened, the note written
    assert len(sealed) == 2
    assert all(s.startswith(CASE_KEY_PREFIX) and b"Johan" not in s for s in sealed)

    assert coordination.process(delivered(case_erased(case_id), 2))
    with pytest.raises(CaseErasedError):
        coordination.relation_notes(case_id)
    # The relation itself still keeps c1 away from the case's follow-ups; it names no one.
    assert coordination.pool().relations[case_id] == {"c1": ["family_of_party"]}
    with pytest.raises(CaseErasedError):
        coordination.declare_relation("c2", case_id, "care_worker", "neighbour", MANAGER)
    assert "c2" not in coordination.pool().relations[case_id]


def test_plans_no_longer_sends_the_copies_of_an_erased_case(make_app: Any) -> None:
    plans = make_app(PlansApplication)
    case_id = held_case(plans)
    plans.record_recipients(
        case_id,
        [
            {
                "participant_id": "p-father",
                "name": "Kees",
                "role": None,
                "organisation": None,
                "channel": "email",
                "email": "kees@example.org",
                "address": None,
            }
        ],
        COORDINATOR,
    )
    plans.write(case_id, content(), COORDINATOR)
    plans.accept(case_id, 1, COORDINATOR)
    plans.distribute(case_id, [], COORDINATOR)
    assert [p.case_id for p in plans.pending_emails()] == [case_id]

    plans.process(delivered(case_erased(case_id), 9000))
    assert plans.pending_emails() == []
    assert plans.views.cases(COORDINATOR) == []


def test_the_follow_up_of_an_erased_case_never_fires(make_app: Any) -> None:
    clock = ManualClock()
    schedule = Schedule(default=(Contact("research", 91),))
    followup = make_app(FollowupApplication, clock=clock, schedule=schedule)
    case_id = uuid.uuid4()
    followup.process(delivered(plan_distributed(case_id, at=clock.now()), 1))
    followup.process(delivered(case_erased(case_id), 1, origin="intake"))
    clock.advance(timedelta(days=92))
    assert followup.fire_due_timers() == 0
    assert followup.views.cases(principal("r1", "researcher")) == []


def test_keys_fetched_in_bulk_read_as_fetched_one_by_one(make_app: Any) -> None:
    intake = make_app(IntakeApplication)
    cases = [submitted(intake) for _ in range(3)]
    intake.erase_case(cases[1], ErasureReason.OTHER, MANAGER)
    intake.close()
    again = make_app(IntakeApplication)  # a cold cache, as after a restart
    again.keyring.prefetch([*cases, uuid.uuid4(), "not-a-case"])
    assert again.get(cases[0]).description.startswith("Johan")
    assert again.keyring.is_erased(cases[1])
    assert again.get(cases[2]).stage.value == "accepted"


def test_a_new_case_s_key_is_stored_with_its_first_events_and_one_key_wins(
    make_app: Any,
) -> None:
    first, racing = make_app(IntakeApplication), make_app(IntakeApplication)  # one store
    case_id = uuid.uuid5(IDEMPOTENT_SUBMISSION, f"{REQUESTER.subject}\nform-1")
    racing.keyring.cipher(case_id, create=True)  # the other process made its key first...
    assert racing.queries.case_key(case_id) is None  # ...which is stored with events only

    first.submit(REQUESTER, "form-1", **REQUEST_BODY)
    same_case = Request.submit(case_id, submitted_at=NOW, actor=acted(REQUESTER), **REQUEST_BODY)
    with pytest.raises(IntegrityError, match="got its key elsewhere"):
        racing.save(same_case)  # never sealed under a key that is not the stored one
    assert racing.get(case_id).region == REQUEST_BODY["region"]  # read with the stored key
    assert racing.submit(REQUESTER, "form-1", **REQUEST_BODY) == case_id
