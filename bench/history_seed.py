"""A national history for the four stores: many cases of realistic shape, written through the
applications themselves, fast.

Every event is made by the services' own code: intake's, coordination's, plans' and followup's
command methods (``submit``, ``record_contact``, ``invite``, ``write``, ``record_outcome`` …) with
the principals a real case has (the regional manager of the region, the coordinator assigned,
a professional, a researcher), and their own policies for what each hears from the others, fed
the integration events the upstream service's ``bus.translate`` makes of its stored events,
with the upstream's real positions for tracking. The request bodies are the sample cases'
(``kring.scenarios``), validated by the services' own API models.

What is faster than the running system, and how it differs from it:
- no HTTP and no bus: the integration events go straight to the downstream policies;
- a batch of cases is saved per service in one transaction (``save`` collects what the
  commands change; the aggregates of the batch are read back from memory, not the store), with
  the tracking rows of what the policies applied written right after it;
- the clock is the seeder's own: each case lives its months (request, clarification,
  preparation, the conference, the plan, the contacts due four weeks and three months later)
  at some moment of the years before now.

The relay checkpoints are left at the end of each store, as after a system that published
everything. Each read model is brought up to date as the batches go, as the running service's
background job does.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import Tracking

from kring import scenarios
from services.coordination import api as coordination_api
from services.coordination import bus as coordination_bus
from services.coordination.app import CoordinationApplication
from services.coordination.pool import POOL_ID, CoordinatorPool
from services.followup import bus as followup_bus
from services.followup.app import FollowupApplication
from services.intake import api as intake_api
from services.intake import bus as intake_bus
from services.intake.app import IntakeApplication
from services.intake.domain import TalkOutcome
from services.plans import api as plans_api
from services.plans import bus as plans_bus
from services.plans.app import PendingEmail, PlansApplication
from services.plans.domain import Channel, DeliveryStatus
from shared.actor import Role
from shared.application import KringApplication, KringProcessingEvent
from shared.envelope import Delivered
from shared.erasure import ErasureReason
from shared.events import ConferenceModel, IntegrationEvent
from shared.identity import Principal

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
REGIONS = tuple(
    f"{name}"
    for name in (
        "Groningen",
        "Friesland",
        "Drenthe",
        "Overijssel",
        "Flevoland",
        "Gelderland-Noord",
        "Gelderland-Zuid",
        "Utrecht",
        "Noord-Holland-Noord",
        "Amsterdam",
        "Zaanstreek",
        "Kennemerland",
        "Haaglanden",
        "Hollands-Midden",
        "Rotterdam-Rijnmond",
        "Zuid-Holland-Zuid",
        "Zeeland",
        "West-Brabant",
        "Midden-Brabant",
        "Brabant-Noordoost",
        "Zuidoost-Brabant",
        "Limburg-Noord",
        "Zuid-Limburg",
        "Twente",
    )
)
COORDINATORS_PER_REGION = 12
CAPACITY = 80
#: How each case ends up (weights, summing to 1000): the stages a national history holds, most
#: of it long finished.
FATES: tuple[tuple[str, int], ...] = (
    ("submitted", 15),
    ("clarified", 10),
    ("withdrawn_early", 15),
    ("waiting", 5),
    ("assigned", 10),
    ("preparing", 10),
    ("scheduled", 10),
    ("withdrawn_late", 10),
    ("stopped", 30),
    ("held", 10),
    ("written", 15),
    ("distributed", 20),
    ("due", 20),
    ("followed_up", 820),
)
MODELS: tuple[tuple[ConferenceModel, int], ...] = (
    (ConferenceModel.FAMILY, 55),
    (ConferenceModel.GROUP, 15),
    (ConferenceModel.RESTORATIVE, 15),
    (ConferenceModel.LEARNING_CIRCLE, 15),
)
#: A share of the cases followed up ask for a follow-up conference (a new case in intake), and
#: a share of all are erased at the end (right to erasure).
FOLLOW_UP_CONFERENCES = 0.05
ERASED = 0.01


class SeedClock:
    """The seeder's clock: set to each moment a case's step happens."""

    def __init__(self) -> None:
        self.at = datetime(2020, 1, 6, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


def manager(region: str) -> Principal:
    return Principal(
        subject=f"rm-{region.lower()}",
        name=f"Regional manager {region}",
        roles=frozenset({Role.REGIONAL_MANAGER}),
        regions=(region,),
    )


def coordinator(coordinator_id: str) -> Principal:
    return Principal(
        subject=coordinator_id,
        name=f"Coordinator {coordinator_id}",
        roles=frozenset({Role.COORDINATOR}),
        coordinator_id=coordinator_id,
    )


def professional(region: str) -> Principal:
    return Principal(
        subject=f"pro-{region.lower()}",
        name=f"Professional {region}",
        roles=frozenset({Role.PROFESSIONAL}),
        regions=(region,),
    )


REQUESTER = Principal(subject="requester", name="A requester", roles=frozenset({Role.REQUESTER}))
RESEARCHER = Principal(
    subject="researcher", name="A researcher", roles=frozenset({Role.RESEARCHER})
)
OPERATOR = Principal(subject="operator", name="An operator", roles=frozenset({Role.OPERATOR}))


class Deferred:
    """An application whose ``save`` only gathers, and whose reads of the aggregates it gathered
    come from memory, until ``flush`` stores them all in one transaction."""

    def __init__(self, app: KringApplication) -> None:
        self.app = app
        self.batch: dict[UUID, Any] = {}
        #: Events a policy collected, with their aggregates, in the order they were made.
        self.collected: list[tuple[list[Any], dict[UUID, Any]]] = []
        self.saving: dict[UUID, Any] = {}
        self.tracking: list[tuple[str, int]] = []
        self._save, self._get = app.save, app.repository.get
        app.save = self.save  # type: ignore[method-assign]
        app.repository.get = self.get  # type: ignore[method-assign]
        # The tracking rows of what the batch's policies applied go into the batch's own
        # transaction, beside its events (as each consumer's would, one by one).
        table = str(getattr(app.recorder, "tracking_table_name", "tracking"))
        self._insert_tracking = app.queries.sql(
            "INSERT INTO {t} (application_name, notification_id) VALUES (%s, %s)", t=table
        )
        insert_events = app.recorder._insert_events  # type: ignore[attr-defined]
        self._storing: list[tuple[str, int]] = []

        def with_tracking(cursor: Any, stored_events: Any, **kwargs: Any) -> Any:
            if self._storing:
                cursor.executemany(self._insert_tracking, self._storing)
            return insert_events(cursor, stored_events, **kwargs)

        setattr(app.recorder, "_insert_events", with_tracking)  # noqa: B010
        #: Bigger batches for the read model while seeding: fewer commits.
        app.views.batch_size = 5000  # type: ignore[attr-defined]

    def save(self, *aggregates: Any, **_: Any) -> list[Any]:
        for aggregate in aggregates:
            if aggregate is not None:
                self.batch[aggregate.id] = aggregate
                self.saving[aggregate.id] = aggregate
        return []

    def get(self, aggregate_id: UUID, **kwargs: Any) -> Any:
        if not kwargs.get("version") and aggregate_id in self.batch:
            return self.batch[aggregate_id]
        found = self._get(aggregate_id, **kwargs)
        if not kwargs.get("version"):
            self.batch[aggregate_id] = found
        return found

    def policy(
        self, name: str, event: IntegrationEvent, origin: str, position: int, at: datetime
    ) -> None:
        """Apply one integration event with the service's own policy, tracked."""
        processing: ProcessingEvent[UUID] = KringProcessingEvent(
            Tracking(application_name=origin, notification_id=position)
        )
        delivered = Delivered(
            event=event,
            origin=origin,
            position=position,
            event_id=f"{origin}:{position}",
            time=at,
        )
        getattr(self.app, name)(event, processing, delivered)
        for aggregate_id, aggregate in processing.aggregates.items():
            self.batch[aggregate_id] = aggregate
        self.collected.append((list(processing.events), dict(processing.aggregates)))
        self.tracking.append((origin, position))

    def flush(self) -> list[tuple[int, Any]]:
        """Store everything gathered in one transaction; (position, domain event) of each."""
        processing: ProcessingEvent[UUID] = KringProcessingEvent()
        for events, aggregates in self.collected:
            processing.events.extend(events)
            processing.aggregates.update(aggregates)
        processing.collect_events(*self.saving.values())
        self.collected, self.saving = [], {}
        if not processing.events:
            return []
        self._storing, self.tracking = self.tracking, []
        try:
            recordings = self.app._record(processing)
        finally:
            self._storing = []
        self.app._take_snapshots(processing)
        self.app._notify(recordings)
        return [(r.notification.id, r.domain_event) for r in recordings]

    def forget_batch(self) -> None:
        keep = {POOL_ID} & set(self.batch)
        self.batch = {k: v for k, v in self.batch.items() if k in keep}


@dataclass
class Case:
    number: int
    model: ConferenceModel
    region: str
    fate: str
    start: datetime
    case_id: UUID | None = None
    coordinator_ids: list[str] = field(default_factory=list)
    participants: dict[str, str] = field(default_factory=dict)
    held_on: date | None = None
    erased: bool = False
    follow_up_conference: bool = False
    #: Integration events, (origin, position, event), as each service published them.
    published: list[tuple[str, int, IntegrationEvent]] = field(default_factory=list)


REACHES = {
    # How far each fate goes: the last step taken.
    "submitted": 0,
    "clarified": 1,
    "withdrawn_early": 1,
    "waiting": 2,
    "assigned": 2,
    "preparing": 3,
    "scheduled": 4,
    "withdrawn_late": 3,
    "stopped": 3,
    "held": 5,
    "written": 6,
    "distributed": 7,
    "due": 8,
    "followed_up": 9,
}


@dataclass
class Seeded:
    cases: int = 0
    events: dict[str, int] = field(default_factory=dict)
    erased: list[UUID] = field(default_factory=list)
    by_fate: dict[str, int] = field(default_factory=dict)


class Seeder:
    def __init__(
        self,
        intake: IntakeApplication,
        coordination: CoordinationApplication,
        plans: PlansApplication,
        followup: FollowupApplication,
        *,
        clock: SeedClock,
        seed: int = 7,
        batch: int = 200,
        now: datetime | None = None,
        every_fate: bool = False,
    ) -> None:
        """``every_fate``: the first cases take each fate and model in turn, and one in twenty
        is erased (a small history for the tests that still holds every shape)."""
        self.apps = {
            "intake": intake,
            "coordination": coordination,
            "plans": plans,
            "followup": followup,
        }
        self.clock = clock
        self.random = random.Random(seed)  # noqa: S311 - a reproducible history, no secret
        self.batch_size = batch
        self.now = now or datetime.now(UTC)
        self.every_fate = every_fate
        self.deferred = {name: Deferred(app) for name, app in self.apps.items()}
        self.result = Seeded()
        self._number = 0
        self.pool = self._pool(coordination)

    # -- the pool ----------------------------------------------------------------------------
    def _pool(self, app: CoordinationApplication) -> CoordinatorPool:
        pool = app.pool()
        deferred = self.deferred["coordination"]
        deferred.batch[POOL_ID] = pool
        app.pool = lambda: pool  # type: ignore[method-assign]
        if not pool.coordinators:
            self.clock.at = datetime(2019, 12, 1, 9, 0, tzinfo=UTC)
            for region in REGIONS:
                for n in range(1, COORDINATORS_PER_REGION + 1):
                    app.register_coordinator(
                        f"co-{region.lower()}-{n}",
                        [region],
                        ["nl", "en"] if n % 3 == 0 else ["nl"],
                        CAPACITY,
                        manager(region),
                    )
            self._flush("coordination")
        return pool

    # -- the run -----------------------------------------------------------------------------
    def seed(self, cases: int, progress: Callable[[int], None] | None = None) -> Seeded:
        done = 0
        while done < cases:
            size = min(self.batch_size, cases - done)
            self._batch([self._new_case() for _ in range(size)])
            done += size
            self.result.cases = done
            for app in self.apps.values():
                app.views.catch_up()  # type: ignore[attr-defined]
            if progress is not None:
                progress(done)
        for name, app in self.apps.items():
            end = app.recorder.max_notification_id() or 0
            app.queries.save_checkpoint(name, end)
        return self.result

    def _new_case(self) -> Case:
        self._number += 1
        model = self.random.choices([m for m, _ in MODELS], [w for _, w in MODELS])[0]
        fate = self.random.choices([f for f, _ in FATES], [w for _, w in FATES])[0]
        if self.every_fate and self._number <= 2 * len(FATES):
            fate = FATES[(self._number - 1) % len(FATES)][0]
            model = MODELS[(self._number - 1) % len(MODELS)][0]
        # Somewhere in the four years up to half a year ago (every contact has come due).
        span = timedelta(days=4 * 365)
        start = self.now - timedelta(days=183) - span * self.random.random()
        case = Case(self._number, model, self.random.choice(REGIONS), fate, start)
        case.erased = self.random.random() < ERASED
        if self.every_fate:
            case.erased = self._number % 20 == 5
        case.follow_up_conference = (
            fate == "followed_up" and self.random.random() < FOLLOW_UP_CONFERENCES
        )
        self.result.by_fate[fate] = self.result.by_fate.get(fate, 0) + 1
        return case

    def _batch(self, cases: list[Case]) -> None:
        """One batch through the four services, each step's upstream stored before the
        downstream hears of it (with the upstream's positions)."""
        for case in cases:
            self._intake(case)
        intake = self._flush("intake")
        for case in cases:
            self._coordination(case, intake)
        coordination = self._flush("coordination")
        for case in cases:
            self._plans(case, intake, coordination)
        plans = self._flush("plans")
        for case in cases:
            self._coordination_after_plan(case, plans)
        self._flush("coordination")
        for case in cases:
            self._followup(case, intake, coordination, plans)
        self._flush("followup")
        # Afterwards, months later: follow-up conferences, late withdrawals, erasures.
        for case in cases:
            self._follow_up_conference(case)
        for position, event in self._published(self._flush("followup")):
            self.deferred["intake"].policy(
                "on_follow_up_conference_requested", event, "followup", position, self.clock.at
            )
        for case in cases:
            self._withdraw_late(case)
        withdrawals = self._flush("intake")
        for position, event in self._published(withdrawals, "RequestWithdrawn"):
            self.deferred["coordination"].policy(
                "on_request_withdrawn", event, "intake", position, self.clock.at
            )
        ended = self._flush("coordination")
        for position, event in self._published(ended, "CaseEndedWithoutConference"):
            self.deferred["plans"].policy(
                "on_case_ended_without_conference", event, "coordination", position, self.clock.at
            )
        self._flush("plans")
        for case in cases:
            self._erase(case)
        for position, event in self._published(self._flush("intake"), "CaseErased"):
            for name in ("coordination", "plans", "followup"):
                self.deferred[name].policy(
                    "on_case_erased", event, "intake", position, self.clock.at
                )
                self._flush(name)  # as a consumer applies it: a transaction of its own
        for deferred in self.deferred.values():
            deferred.forget_batch()

    @staticmethod
    def _published(
        by_case: Mapping[UUID, list[tuple[int, Any]]], kind: str | None = None
    ) -> list[tuple[int, Any]]:
        found = [
            (position, event)
            for events in by_case.values()
            for position, event in events
            if kind is None or type(event).__name__ == kind
        ]
        return sorted(found, key=lambda pair: pair[0])

    def _flush(self, service: str) -> dict[UUID, list[tuple[int, Any]]]:
        """Store the service's batch; its published events by case."""
        stored = self.deferred[service].flush()
        self._count(service, stored)
        translate: Callable[[Any], IntegrationEvent | None] = TRANSLATE[service]
        by_case: dict[UUID, list[tuple[int, Any]]] = {}
        for position, domain_event in stored:
            integration = translate(domain_event)
            if integration is not None:
                by_case.setdefault(integration.case_id, []).append((position, integration))
        return by_case

    def _count(self, service: str, stored: Iterable[Any]) -> None:
        self.result.events[service] = self.result.events.get(service, 0) + len(list(stored))

    def _at(self, case: Case, days: float) -> datetime:
        self.clock.at = case.start + timedelta(days=days)
        return self.clock.at

    # -- intake ------------------------------------------------------------------------------
    def _intake(self, case: Case) -> None:
        app: IntakeApplication = self.apps["intake"]  # type: ignore[assignment]
        scenario = scenarios.SCENARIOS[case.model]
        rm = manager(case.region)
        self._at(case, 0)
        body = scenarios.request_body(scenario, case.region)
        if case.fate == "waiting":
            body["languages"] = ["ar"]  # nobody in the pool speaks it: the case waits
        request = intake_api.SubmitRequest.model_validate(body).model_dump(mode="json")
        case.case_id = app.submit(REQUESTER, None, **request)
        if case.fate == "submitted":
            return
        self._at(case, 3)
        clarification = intake_api.Clarification.model_validate(
            scenarios.clarification_body(scenario, signs_in_as=professional(case.region).subject)
        ).model_dump(mode="json")
        app.clarify(case.case_id, rm, **clarification)
        if case.fate == "clarified":
            return
        for outcome in scenario.talks:
            held_on = self.clock.at.astimezone(AMSTERDAM).date()
            app.record_talk(
                case.case_id, rm, held_on=held_on, held_by=None, outcome=TalkOutcome(outcome)
            )
        if case.fate == "withdrawn_early":
            self._at(case, 5)
            app.withdraw(case.case_id, "the family found another way", rm)
            return
        self._at(case, 5)
        app.accept(case.case_id, rm)

    def _withdraw_late(self, case: Case) -> None:
        if case.fate != "withdrawn_late" or case.case_id is None:
            return
        app: IntakeApplication = self.apps["intake"]  # type: ignore[assignment]
        self._at(case, 9)
        app.withdraw(case.case_id, "the family moved away", manager(case.region))

    # -- coordination ------------------------------------------------------------------------
    def _coordination(self, case: Case, intake: Mapping[UUID, list[tuple[int, Any]]]) -> None:
        if REACHES[case.fate] < 2 or case.fate == "withdrawn_early":
            return
        assert case.case_id is not None
        app: CoordinationApplication = self.apps["coordination"]  # type: ignore[assignment]
        deferred = self.deferred["coordination"]
        scenario = scenarios.SCENARIOS[case.model]
        [(position, received)] = [
            (p, e) for p, e in intake[case.case_id] if type(e).__name__ == "RequestReceived"
        ]
        self._at(case, 5)
        deferred.policy("on_request_received", received, "intake", position, self.clock.at)
        assigned = app.get(case.case_id)
        case.coordinator_ids = list(assigned.coordinator_ids)
        if not case.coordinator_ids or case.fate in ("waiting", "assigned"):
            return
        who = coordinator(case.coordinator_ids[0])
        self._at(case, 7)
        app.record_contact(case.case_id, who)
        if case.fate == "withdrawn_late":
            return
        if case.fate == "stopped":
            self._at(case, 12)
            app.end_without_conference(case.case_id, "stopped", "network_not_willing", "", who)
            return
        self._at(case, 10)
        for person in scenario.people:
            body = coordination_api.NewParticipant.model_validate(
                scenarios.participant_body(person)
            ).model_dump(mode="json")
            _, participant_id = app.invite(case.case_id, who, **body)
            case.participants[person.key] = participant_id
        self._at(case, 16)
        for person in scenario.people:
            app.confirm(case.case_id, case.participants[person.key], True, who)
            app.record_informed(case.case_id, case.participants[person.key], None, who)
        for topic, key in scenario.information:
            app.need_information(case.case_id, topic, case.participants[key], who)
        held_on = self._at(case, 40).astimezone(AMSTERDAM).date()
        self._at(case, 20)
        arrangements = coordination_api.Arrangements.model_validate(
            scenarios.arrangements_body(scenario, held_on)
        ).model_dump()
        app.arrange(case.case_id, arrangements, who)
        if case.fate == "preparing":
            return
        app.schedule(case.case_id, held_on, scenario.arrangements.get("venue", "-"), who)
        if case.fate == "scheduled":
            return
        self._at(case, 40)
        record = coordination_api.ConferenceRecord.model_validate(
            scenarios.conference_body(scenario, case.participants, held_on)
        )
        parts = {part.value: r.model_dump() for part, r in record.parts.items()}
        app.hold_conference(case.case_id, record.held_on, parts, who)
        case.held_on = held_on

    def _coordination_after_plan(
        self, case: Case, plans: Mapping[UUID, list[tuple[int, Any]]]
    ) -> None:
        assert case.case_id is not None
        for position, event in plans.get(case.case_id, []):
            if type(event).__name__ == "PlanDistributed":
                self._at(case, 50)
                self.deferred["coordination"].policy(
                    "on_plan_distributed", event, "plans", position, self.clock.at
                )

    # -- plans -------------------------------------------------------------------------------
    def _plans(
        self,
        case: Case,
        intake: Mapping[UUID, list[tuple[int, Any]]],
        coordination: Mapping[UUID, list[tuple[int, Any]]],
    ) -> None:
        if case.case_id is None or case.case_id not in intake:
            return
        deferred = self.deferred["plans"]
        for position, event in intake[case.case_id]:
            if type(event).__name__ == "RequestReceived":
                self._at(case, 5)
                deferred.policy("on_request_received", event, "intake", position, self.clock.at)
        for position, event in coordination.get(case.case_id, []):
            name = {
                "CoordinatorAssigned": "on_coordinator_assigned",
                "ConferenceHeld": "on_conference_held",
                "CaseEndedWithoutConference": "on_case_ended_without_conference",
            }.get(type(event).__name__)
            if name is not None:
                deferred.policy(name, event, "coordination", position, self.clock.at)
        if REACHES[case.fate] < 6 or case.held_on is None:
            return
        app: PlansApplication = self.apps["plans"]  # type: ignore[assignment]
        scenario = scenarios.SCENARIOS[case.model]
        who = coordinator(case.coordinator_ids[0])
        self._at(case, 42)
        # Plans' claim check, answered by intake's store directly (no NATS here).
        intake_app: IntakeApplication = self.apps["intake"]  # type: ignore[assignment]
        answer = intake_app.clarification_for_plan(case.case_id, "plans")
        if answer.clarification is not None:
            app.note_clarification(case.case_id, answer.clarification)
        recipients = plans_api.Recipients.model_validate(
            scenarios.recipients_body(scenario, case.participants)
        )
        entries = [plans_api._entry(r) for r in recipients.recipients]
        app.record_recipients(case.case_id, entries, who)
        content = plans_api.PlanContent.model_validate(
            scenarios.plan_body(scenario, case.participants, case.held_on)
        ).value()
        app.write(case.case_id, content, who)
        if case.fate == "written":
            return
        self._at(case, 43)
        app.accept(case.case_id, 1, who)
        if scenario.minimum_requirements:
            app.sign_off(case.case_id, 1, True, None, professional(case.region))
        self._at(case, 45)
        # Shared with those of the scenario's organisations that are partners here (none in a
        # seeded history: it has no partners service), as the workflow does.
        partners = app.partners()
        shared = [o for o in scenario.shared_with_organisations if partners.is_active(o)]
        app.distribute(case.case_id, shared, who, 1)
        self._at(case, 46)
        for person in scenario.people:
            participant_id = case.participants[person.key]
            if person.email:
                app.record_email_outcome(
                    PendingEmail(case.case_id, 1, participant_id), DeliveryStatus.SENT
                )
            else:
                app.record_handover(case.case_id, 1, participant_id, Channel.BY_HAND, who)

    # -- followup ----------------------------------------------------------------------------
    def _followup(
        self,
        case: Case,
        intake: Mapping[UUID, list[tuple[int, Any]]],
        coordination: Mapping[UUID, list[tuple[int, Any]]],
        plans: Mapping[UUID, list[tuple[int, Any]]],
    ) -> None:
        if case.case_id is None:
            return
        deferred = self.deferred["followup"]
        for position, event in intake.get(case.case_id, []):
            if type(event).__name__ == "RequestReceived":
                deferred.policy("on_request_received", event, "intake", position, self.clock.at)
        for position, event in coordination.get(case.case_id, []):
            if type(event).__name__ == "CoordinatorAssigned":
                deferred.policy(
                    "on_coordinator_assigned", event, "coordination", position, self.clock.at
                )
        distributed = [
            (p, e) for p, e in plans.get(case.case_id, []) if type(e).__name__ == "PlanDistributed"
        ]
        if not distributed:
            return
        app: FollowupApplication = self.apps["followup"]  # type: ignore[assignment]
        [(position, event)] = distributed
        self._at(case, 45)
        deferred.policy("on_plan_distributed", event, "plans", position, self.clock.at)
        if REACHES[case.fate] < 8:
            return
        follow_up = app.get(case.case_id)
        for timer_id, timer in sorted(follow_up.timers.items(), key=lambda t: t[1].due_at):
            if timer.kind == "next_meeting_reminder":
                continue
            self.clock.at = timer.due_at + timedelta(hours=2)
            fired = app.get(case.case_id)
            fired.fire_due(at=self.clock.at, actor=app.system)
            app.save(fired)
            if case.fate == "due":
                return
            agreements = {aid: "kept" for aid in fired.agreement_ids}
            if agreements:
                agreements[fired.agreement_ids[-1]] = "partly_kept"
            who = (
                coordinator(case.coordinator_ids[0])
                if timer.kind == "coordinator_call"
                else RESEARCHER
            )
            self.clock.at += timedelta(days=2)
            if timer.kind == "next_meeting":
                # The family's own meeting: recorded as a meeting, which is its outcome.
                app.record_meeting(
                    case.case_id,
                    coordinator(case.coordinator_ids[0]),
                    timer_id=timer_id,
                    held=True,
                    held_on=timer.due_at.astimezone(AMSTERDAM).date(),
                    agreements=agreements,
                    revised_plan_wanted=False,
                    next_meeting_on=None,
                    notes="They met as planned.",
                )
                continue
            app.record_outcome(
                case.case_id, timer_id, True, agreements, "Most agreements hold.", who
            )

    def _follow_up_conference(self, case: Case) -> None:
        if case.case_id is not None and case.follow_up_conference:
            app: FollowupApplication = self.apps["followup"]  # type: ignore[assignment]
            self._at(case, 160)
            app.request_follow_up_conference(
                case.case_id,
                "The family asks to meet again.",
                coordinator(case.coordinator_ids[0]),
            )

    def _erase(self, case: Case) -> None:
        app: IntakeApplication = self.apps["intake"]  # type: ignore[assignment]
        if case.case_id is not None and case.erased:
            self._at(case, 170)
            app.erase_case(case.case_id, ErasureReason.REQUESTED_BY_PERSON, OPERATOR)
            self.result.erased.append(case.case_id)


TRANSLATE: dict[str, Callable[[Any], IntegrationEvent | None]] = {
    "intake": intake_bus.translate,
    "coordination": coordination_bus.translate,
    "plans": plans_bus.translate,
    "followup": followup_bus.translate,
}
