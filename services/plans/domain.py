"""The plan (het plan) and its rules. No I/O.

After the conference the coordinator writes up the plan the family made: agreements (afspraken)
— who does what, where and when —, what happens if something does not work, who watches that
the agreements are kept, when everyone meets again, and the professional support the family
chose. Every revision is a new version; old versions stay readable.

A version goes out only once the family accepted it and, where a professional set a minimum
requirement for a safe plan (minimumeis), once a professional recorded that this very version
meets it. Every participant and every central person gets a copy; each copy has a delivery
record. Names and delivery addresses are kept here, per participant id, and never leave this
store except on the copies themselves.

The family may consent to share a distributed version with partner organisations (registered
with the partners service, whose registry plans keeps a copy of): each then gets a thin event and
fetches its copy itself. The family may withdraw that consent for one organisation; it then gets
nothing more of the case, and may fetch no copy, until a later distribution names it again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from pydantic import Field

from shared.errors import DomainRuleError, InvalidFieldError, NotFoundError, NotPermittedError
from shared.identity import fold
from shared.values import Value


class Stage(StrEnum):
    AWAITING_CONFERENCE = "awaiting_conference"
    CONFERENCE_HELD = "conference_held"
    WITHOUT_MEETING = "plan_without_meeting"
    STOPPED = "stopped"
    WRITTEN = "plan_written"
    DISTRIBUTED = "plan_distributed"


class Channel(StrEnum):
    """How a participant's copy reaches them."""

    EMAIL = "email"
    POST = "post"
    BY_HAND = "by_hand"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # e-mail: the delivery worker has it; post, by hand: the coordinator
    SENT = "sent"  # the SMTP server accepted the e-mail
    DELIVERED = "delivered"  # posted or handed over, as the coordinator recorded
    NOT_SENT = "not_sent"  # e.g. no SMTP configured: the coordinator hands it over instead
    FAILED = "failed"  # the SMTP server refused it, or kept failing


#: A copy in one of these states has reached (or is on its way to) its recipient.
DONE = frozenset({DeliveryStatus.SENT, DeliveryStatus.DELIVERED})

#: Who may do what is ``services.plans.access``: the rules below take a permitted actor. One
#: rule joins the actor to the case's facts and so lives here: a minimum requirement's sign-off
#: belongs to the professional who set it, or to one the regional manager named in their place.


# -- values ------------------------------------------------------------------------------------
class PlanParticipant(Value):
    """Someone who took part (or a central person): a role and, for a professional or expert
    who did not withdraw sharing, an organisation. Names are in the directory, not here."""

    stored_as = "plans.participant"

    participant_id: str
    role: str
    organisation: str | None = None


class ConferenceQuestion(Value):
    """A conference question (conferentievraag) as the regional manager clarified it; the
    plan answers it. ``question_id`` is ``q<n>`` in the clarification's order."""

    stored_as = "plans.question"

    question_id: str
    text: str


class Professional(Value):
    stored_as = "plans.professional"

    name: str
    organisation: str
    role: str
    #: Who they sign in as; None where the regional manager did not record it.
    subject: str | None = None


class MinimumRequirement(Value):
    """A condition every safe plan must meet (minimumeis), on the table for everyone: its text
    is printed on every copy. ``requirement_id`` is ``m<n>``."""

    stored_as = "plans.minimum_requirement"

    requirement_id: str
    text: str
    set_by: Professional


class Signatory(Value):
    """A professional the regional manager named to sign off a requirement in place of the one
    who set it (away, left the organisation, never a Kring user), with why."""

    stored_as = "plans.signatory"

    subject: str
    name: str
    reason: str
    named_by: str
    at: datetime


class When(Value):
    stored_as = "plans.when"

    on: date | None = None
    recurring: str | None = None


class Agreement(Value):
    """Who does what, where and when (afspraak); ``answers``: the conference questions it
    answers. ``id`` is None only in a write-up, for a new agreement."""

    stored_as = "plans.agreement"

    id: str | None = None
    who: list[str] = Field(min_length=1)
    what: str
    where: str | None = None
    when: When | None = None
    answers: list[str] = Field(default_factory=list)


class Support(Value):
    stored_as = "plans.support"

    organisation: str
    what: str


class PlanContent(Value):
    """What one version of the plan says."""

    stored_as = "plans.content"

    agreements: list[Agreement] = Field(min_length=1)
    if_something_does_not_work: str
    watched_by: str
    next_meeting_on: date | None = None
    professional_support: list[Support] = Field(default_factory=list)
    #: The one question a coordinator copied onto versions written before the questions came
    #: from intake; later versions leave it out.
    question: str | None = None


class SharedAgreement(Value):
    """An agreement as a partner organisation may know it: its id and, where it is for one
    day, that date. Never what, where or who."""

    stored_as = "plans.shared_agreement"

    agreement_id: str
    on: date | None = None


class OrganisationShare(Value):
    """One partner organisation a distributed version is shared with, and the agreements its
    people take part in."""

    stored_as = "plans.organisation_share"

    organisation: str
    agreements: list[SharedAgreement] = Field(default_factory=list)


VALUES: tuple[type[Value], ...] = (
    PlanParticipant,
    ConferenceQuestion,
    Professional,
    MinimumRequirement,
    Signatory,
    When,
    Agreement,
    Support,
    PlanContent,
    SharedAgreement,
    OrganisationShare,
)


class RequirementNotFoundError(NotFoundError):
    def __init__(self, case_id: UUID, requirement_id: str) -> None:
        super().__init__(f"case {case_id} has no minimum requirement {requirement_id!r}")


class VersionNotFoundError(NotFoundError):
    def __init__(self, case_id: UUID, version: int) -> None:
        super().__init__(f"case {case_id} has no plan version {version}")


class Plan(Aggregate):
    """One case's plan, with all its versions, sign-offs, distributions and deliveries. Its id is
    the case id, so whichever upstream event arrives first opens the same aggregate."""

    @event("Opened")
    def __init__(self, id: UUID, *, model: str, actor: dict[str, str]) -> None:
        self.model = model
        self.request_known = False
        #: The case's region (from the accepted request): who may read the plan depends on it.
        self.region: str | None = None
        self.languages: list[str] = []
        self.has_minimum_requirements = False
        self.coordinator_ids: list[str] = []
        self.held_on: date | None = None
        self.ending: str | None = None
        #: Who took part, and every central person, by participant id.
        self.participants: dict[str, PlanParticipant] = {}
        self.consent_withdrawn: list[str] = []
        #: participant id -> {"name", "channel", "email", "address"}: kept here only.
        self.directory: dict[str, dict[str, str | None]] = {}
        #: The conference questions and minimum requirements, from intake (a claim check).
        self.clarification_known = False
        self.questions: list[ConferenceQuestion] = []
        self.requirements: list[MinimumRequirement] = []
        #: requirement id -> the professional named to sign it off in place of its setter.
        self.signatories: dict[str, Signatory] = {}
        #: When the family, at their own next meeting, asked for a revised plan.
        self.revisions_requested: list[datetime] = []
        #: Version dicts: {"version", "content": PlanContent, "written_at", "written_by"}.
        self.versions: list[dict[str, Any]] = []
        self.acceptances: list[dict[str, Any]] = []
        self.sign_offs: list[dict[str, Any]] = []
        self.distributions: list[dict[str, Any]] = []
        self.deliveries: list[dict[str, Any]] = []
        #: organisation id -> {"versions": [...], "withdrawn_at": None | datetime}: the partner
        #: organisations the family consented to share the plan with, and which versions.
        self.sharing: dict[str, dict[str, Any]] = {}
        self.stage = Stage.AWAITING_CONFERENCE

    # -- what plans hears from intake and coordination -----------------------------------
    class RequestNoted(Aggregate.Event):
        """Version 2 carries the case's region; version 1 (before identity) did not."""

        class_version = 2
        languages: list[str]
        has_minimum_requirements: bool
        region: str | None
        actor: dict[str, str]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["region"] = None

    @event(RequestNoted)
    def note_request(
        self,
        *,
        languages: list[str],
        has_minimum_requirements: bool,
        region: str | None,
        actor: dict[str, str],
    ) -> None:
        self.request_known = True
        self.languages = languages
        self.has_minimum_requirements = has_minimum_requirements
        self.region = region

    @event("CoordinatorNoted")
    def note_coordinator(self, *, coordinator_ids: list[str], actor: dict[str, str]) -> None:
        self.coordinator_ids = coordinator_ids

    class ConferenceNoted(Aggregate.Event):
        """Version 2 keeps the participants as values; version 1 kept dicts, or none at all
        (stored before ConferenceHeld named its participants)."""

        class_version = 2
        held_on: date
        actor: dict[str, str]
        participants: list[PlanParticipant]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["participants"] = [
                PlanParticipant.model_validate(
                    {
                        "participant_id": p["participant_id"],
                        "role": p["role"],
                        "organisation": p.get("organisation"),
                    }
                )
                for p in state.get("participants") or []
            ]

    @event(ConferenceNoted)
    def note_conference(
        self, *, held_on: date, actor: dict[str, str], participants: list[PlanParticipant]
    ) -> None:
        self.held_on = held_on
        for p in participants:
            self.participants[p.participant_id] = p
        if self.stage is Stage.AWAITING_CONFERENCE:
            self.stage = Stage.CONFERENCE_HELD

    @event("ClarificationNoted")
    def note_clarification(
        self,
        *,
        questions: list[ConferenceQuestion],
        requirements: list[MinimumRequirement],
        actor: dict[str, str],
    ) -> None:
        """Intake's answer to plans' claim check: the questions the plan answers and the
        requirements it must meet, as the regional manager clarified them."""
        self.clarification_known = True
        self.questions = list(questions)
        self.requirements = list(requirements)

    @event("EndedWithoutConference")
    def note_ended_without_conference(self, *, ending: str, actor: dict[str, str]) -> None:
        # A plan made without a meeting is written up all the same; a stopped case has none.
        self.ending = ending
        self.stage = Stage.WITHOUT_MEETING if ending == "plan_without_meeting" else Stage.STOPPED

    @event("ConsentWithdrawalNoted")
    def note_consent_withdrawn(
        self, *, participant_id: str, at: datetime, actor: dict[str, str]
    ) -> None:
        if participant_id not in self.consent_withdrawn:
            self.consent_withdrawn.append(participant_id)

    @event("RevisionRequestNoted")
    def note_revision_requested(
        self, *, requested_at: datetime, timer_id: str, actor: dict[str, str]
    ) -> None:
        self.revisions_requested.append(requested_at)

    @property
    def revision_requested(self) -> datetime | None:
        """A revised plan the family asked for at their next meeting, not yet written: when."""
        if not self.revisions_requested:
            return None
        last = max(self.revisions_requested)
        written = self.versions[-1]["written_at"] if self.versions else None
        return last if written is None or written < last else None

    # -- the coordinator: names and delivery channels -----------------------------------
    def record_recipients(self, *, entries: list[dict[str, Any]], actor: dict[str, str]) -> None:
        """Per participant id: the name printed on the copies and how their copy reaches them.
        In a plan made without a meeting no conference named the participants, so the
        coordinator introduces them here, each with a role."""
        self.check_not_stopped()
        if self.stage is Stage.AWAITING_CONFERENCE:
            raise DomainRuleError("the participants are known once the conference was held")
        for i, entry in enumerate(entries):
            self.check_recipient(i, entry)
        self._recipients_recorded(entries=entries, actor=actor)

    def check_recipient(self, i: int, entry: Mapping[str, Any]) -> None:
        known = self.participants.get(entry["participant_id"])
        if known is None and self.held_on is not None:
            raise InvalidFieldError(
                ("recipients", i, "participant_id"),
                f"unknown participant {entry['participant_id']!r}: not among the conference's"
                " participants",
            )
        if known is None and entry.get("role") is None:
            raise InvalidFieldError(
                ("recipients", i, "role"), "a participant new to the plan needs a role"
            )
        if known is not None and entry.get("role") not in (None, known.role):
            raise InvalidFieldError(
                ("recipients", i, "role"),
                f"the conference recorded this participant as {known.role}: leave role out",
            )

    @event("RecipientsRecorded")
    def _recipients_recorded(self, *, entries: list[dict[str, Any]], actor: dict[str, str]) -> None:
        for entry in entries:
            pid = entry["participant_id"]
            if pid not in self.participants:
                self.participants[pid] = PlanParticipant(
                    participant_id=pid, role=entry["role"], organisation=entry.get("organisation")
                )
            self.directory[pid] = {
                "name": entry.get("name"),
                "channel": entry.get("channel", Channel.BY_HAND.value),
                "email": entry.get("email"),
                "address": entry.get("address"),
            }

    # -- writing -------------------------------------------------------------------------
    def write(self, *, content: PlanContent, at: datetime, actor: dict[str, str]) -> int:
        """Write up a new version. Returns its number. Agreements without an id get a new one;
        an agreement carried over from an earlier version keeps its id, so a follow-up can
        record one outcome per agreement across revisions."""
        self.check_not_stopped()
        if self.stage is Stage.AWAITING_CONFERENCE:
            raise DomainRuleError("a plan can be written up only after the conference was held")
        if not self.participants:
            raise DomainRuleError(
                "the plan's participants are not known yet: record them (with their roles)"
                " before writing the plan"
            )
        content = self.check_content(content)
        self._written(version=len(self.versions) + 1, content=content, at=at, actor=actor)
        return len(self.versions)

    def check_content(self, content: PlanContent) -> PlanContent:
        """Check every participant, agreement and question id the content names; give new
        agreements their ids. Returns the content to store."""
        earlier_ids = {a.id for v in self.versions for a in v["content"].agreements}
        next_number = 1 + max((_number(i) for i in earlier_ids if i), default=0)
        question_ids = [q.question_id for q in self.questions]
        seen: set[str] = set()
        agreements = []
        for i, agreement in enumerate(content.agreements):
            for j, who in enumerate(agreement.who):
                self.check_participant(who, ("agreements", i, "who", j))
            for j, answered in enumerate(agreement.answers):
                if answered not in question_ids:
                    known = ", ".join(question_ids) or "none yet: intake has not answered"
                    raise InvalidFieldError(
                        ("agreements", i, "answers", j),
                        f"unknown question {answered!r}: this case's questions are {known}",
                    )
            agreement_id = agreement.id
            if agreement_id is None:
                agreement_id = f"a{next_number}"
                next_number += 1
            elif agreement_id not in earlier_ids:
                raise InvalidFieldError(
                    ("agreements", i, "id"),
                    f"unknown agreement {agreement_id!r}: an id keeps an agreement of an earlier"
                    " version; leave it out for a new agreement",
                )
            if agreement_id in seen:
                raise InvalidFieldError(("agreements", i, "id"), f"{agreement_id!r} appears twice")
            seen.add(agreement_id)
            agreements.append(
                agreement.but(id=agreement_id, answers=list(dict.fromkeys(agreement.answers)))
            )
        self.check_participant(content.watched_by, ("watched_by",))
        next_meeting = content.next_meeting_on
        if next_meeting and self.held_on and next_meeting < self.held_on:
            raise InvalidFieldError(
                ("next_meeting_on",),
                f"the next meeting cannot be before the conference ({self.held_on.isoformat()})",
            )
        return content.but(agreements=agreements)

    def check_participant(self, participant_id: str, loc: Sequence[str | int]) -> None:
        if participant_id not in self.participants:
            raise InvalidFieldError(
                loc, f"unknown participant {participant_id!r}: not a participant of this case"
            )

    class Written(Aggregate.Event):
        """Version 2 keeps the content as a value (agreements answer questions by id); version 1
        kept a dict, read as the same value."""

        class_version = 2
        version: int
        content: PlanContent
        at: datetime
        actor: dict[str, str]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["content"] = PlanContent.model_validate(state["content"])

    @event(Written)
    def _written(
        self, *, version: int, content: PlanContent, at: datetime, actor: dict[str, str]
    ) -> None:
        self.versions.append(
            {"version": version, "content": content, "written_at": at, "written_by": actor}
        )
        self.stage = Stage.WRITTEN

    # -- acceptance and sign-off -----------------------------------------------------------
    def accept(self, *, version: int, at: datetime, actor: dict[str, str]) -> None:
        """Those present accepted this version (part three of the conference, or later for a
        revision): the plan is theirs."""
        self.check_current(version, "accepted")
        if self.accepted(version):
            raise DomainRuleError(f"version {version} was already accepted")
        self._accepted(version=version, at=at, actor=actor)

    @event("Accepted")
    def _accepted(self, *, version: int, at: datetime, actor: dict[str, str]) -> None:
        self.acceptances.append({"version": version, "at": at, "by": actor})

    def name_signatory(
        self,
        *,
        requirement_id: str,
        subject: str,
        name: str,
        reason: str,
        at: datetime,
        actor: dict[str, str],
    ) -> None:
        """The regional manager names the professional who signs off a requirement in place of
        the one who set it; recorded with why. Again to name another."""
        requirement = self.requirement(requirement_id)
        if not reason.strip():
            raise InvalidFieldError(("reason",), "naming another professional needs a reason")
        if subject == requirement.set_by.subject and requirement_id not in self.signatories:
            raise DomainRuleError(
                f"{subject} set requirement {requirement_id}: the sign-off is theirs already"
            )
        self._signatory_named(
            requirement_id=requirement_id,
            signatory=Signatory(
                subject=subject, name=name, reason=reason, named_by=actor["id"], at=at
            ),
            actor=actor,
        )

    @event("SignatoryNamed")
    def _signatory_named(
        self, *, requirement_id: str, signatory: Signatory, actor: dict[str, str]
    ) -> None:
        self.signatories[requirement_id] = signatory

    def requirement(self, requirement_id: str) -> MinimumRequirement:
        found = next((m for m in self.requirements if m.requirement_id == requirement_id), None)
        if found is None:
            raise RequirementNotFoundError(self.id, requirement_id)
        return found

    def signatory_of(self, requirement: MinimumRequirement) -> str | None:
        """Who signs this requirement off: the professional named in place of its setter, or
        the one who set it (None: nobody yet, the regional manager names one)."""
        named = self.signatories.get(requirement.requirement_id)
        return named.subject if named is not None else requirement.set_by.subject

    def check_may_sign(self, requirement: MinimumRequirement, actor: dict[str, str]) -> None:
        if actor.get("id") == self.signatory_of(requirement):
            return
        named = self.signatories.get(requirement.requirement_id)
        who = (
            f"{named.name}, named by the regional manager in place of {requirement.set_by.name}"
            if named is not None
            else f"{requirement.set_by.name} ({requirement.set_by.organisation}), who set it,"
            " or a professional the regional manager names in their place"
        )
        raise NotPermittedError(
            f"signing off minimum requirement {requirement.requirement_id} needs {who}"
        )

    def sign_off(
        self,
        *,
        version: int,
        meets: bool,
        reason: str | None,
        at: datetime,
        actor: dict[str, str],
        requirement_ids: Sequence[str] | None = None,
    ) -> list[str]:
        """A professional records whether this version meets the minimum requirement(s) they
        may sign: the ones named, or every one that is theirs. A refusal, with its reason,
        blocks distribution until a new version is signed off. Returns the requirement ids."""
        self.check_request_known()
        if not self.has_minimum_requirements:
            raise DomainRuleError("no minimum requirement was set for this case: nothing to sign")
        if not self.clarification_known:
            raise DomainRuleError(
                "plans has not yet received the minimum requirements from intake: try again shortly"
            )
        self.check_current(version, "signed off")
        if requirement_ids is None:
            targets = [
                m for m in self.requirements if actor.get("id") == self.signatory_of(m)
            ] or self.requirements[:1]
        else:
            targets = []
            for i, requirement_id in enumerate(requirement_ids):
                try:
                    targets.append(self.requirement(requirement_id))
                except RequirementNotFoundError as missing:
                    raise InvalidFieldError(("requirement_ids", i), str(missing)) from None
        for requirement in targets:
            self.check_may_sign(requirement, actor)
        for requirement in targets:
            earlier = self.sign_off_of(version, requirement.requirement_id)
            if earlier is not None:
                verdict = "meets" if earlier["meets"] else "does not meet"
                raise DomainRuleError(
                    f"version {version} was already signed off ({verdict} minimum requirement"
                    f" {requirement.requirement_id})"
                )
        if not meets and not (reason or "").strip():
            raise InvalidFieldError(("reason",), "a refusal needs its reason")
        ids = [m.requirement_id for m in targets]
        self._signed_off(
            version=version, meets=meets, reason=reason, at=at, actor=actor, requirement_ids=ids
        )
        return ids

    class SignedOff(Aggregate.Event):
        """Version 2 names the requirements signed off; a version 1 sign-off (before plans knew
        the requirements) covers every requirement of its version."""

        class_version = 2
        version: int
        meets: bool
        reason: str | None
        at: datetime
        actor: dict[str, str]
        requirement_ids: list[str] | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["requirement_ids"] = None

    @event(SignedOff)
    def _signed_off(
        self,
        *,
        version: int,
        meets: bool,
        reason: str | None,
        at: datetime,
        actor: dict[str, str],
        requirement_ids: list[str] | None,
    ) -> None:
        self.sign_offs.append(
            {
                "version": version,
                "meets": meets,
                "reason": reason,
                "at": at,
                "by": actor,
                "requirement_ids": requirement_ids,
            }
        )

    # -- distribution ----------------------------------------------------------------------
    def distribute(
        self,
        *,
        shared_with_organisations: list[str],
        at: datetime,
        actor: dict[str, str],
        partners: PartnerDirectory,
        version: int | None = None,
    ) -> None:
        """Send the current version to every participant and every central person, and share it
        with the partner organisations the family consented to (each a registered partner)."""
        if version is not None:
            self.check_current(version, "distributed")
        organisations = list(dict.fromkeys(shared_with_organisations))
        for i, organisation in enumerate(shared_with_organisations):
            partners.check_partner(organisation, ("shared_with_organisations", i))
        blockers = self.distribution_blockers()
        if blockers:
            raise DomainRuleError(blockers[0])
        current = self.versions[-1]
        recipients = [
            {
                "participant_id": pid,
                "role": p.role,
                # A participant who withdrew sharing consent is not named by organisation.
                "organisation": None if pid in self.consent_withdrawn else p.organisation,
                "channel": self.directory.get(pid, {}).get("channel") or Channel.BY_HAND.value,
            }
            for pid, p in self.participants.items()
        ]
        self._distributed(
            version=current["version"],
            recipients=recipients,
            shared_with_organisations=organisations,
            next_meeting_on=_iso(current["content"].next_meeting_on),
            agreement_ids=[a.id for a in current["content"].agreements if a.id],
            model=self.model,
            at=at,
            actor=actor,
        )
        if organisations:
            self._shared(
                version=current["version"],
                organisations=[
                    OrganisationShare(
                        organisation=organisation,
                        agreements=self.agreements_of(organisation, partners, current),
                    )
                    for organisation in organisations
                ],
                next_meeting_on=current["content"].next_meeting_on,
                model=self.model,
                at=at,
                actor=actor,
            )

    def agreements_of(
        self, organisation: str, partners: PartnerDirectory, version: dict[str, Any]
    ) -> list[SharedAgreement]:
        """The agreements of ``version`` one of the organisation's people takes part in (a
        participant whose organisation, as entered, is the partner's id or name), with their
        dates: ids and dates only. A participant who withdrew consent to share their details
        ties no organisation to an agreement."""
        known = {fold(organisation), *(fold(n) for n in partners.names_of(organisation))}
        theirs = {
            pid
            for pid, p in self.participants.items()
            if p.organisation
            and fold(p.organisation) in known
            and pid not in self.consent_withdrawn
        }
        content: PlanContent = version["content"]
        return [
            SharedAgreement(agreement_id=a.id, on=a.when.on if a.when else None)
            for a in content.agreements
            if a.id and theirs & set(a.who)
        ]

    class Shared(Aggregate.Event):
        """Version 2 carries each organisation and its agreements as values, and the next
        meeting as a date; version 1 kept dicts and ISO text, read as the same values."""

        class_version = 2
        version: int
        organisations: list[OrganisationShare]
        next_meeting_on: date | None
        model: str
        at: datetime
        actor: dict[str, str]

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["organisations"] = [
                OrganisationShare.model_validate(o) for o in state["organisations"]
            ]
            if isinstance(state["next_meeting_on"], str):
                state["next_meeting_on"] = date.fromisoformat(state["next_meeting_on"])

    @event(Shared)
    def _shared(
        self,
        *,
        version: int,
        organisations: list[OrganisationShare],
        next_meeting_on: date | None,
        model: str,
        at: datetime,
        actor: dict[str, str],
    ) -> None:
        for entry in organisations:
            shared = self.sharing.setdefault(
                entry.organisation, {"versions": [], "withdrawn_at": None}
            )
            shared["versions"].append(version)
            shared["withdrawn_at"] = None  # named again: the family consented again

    def withdraw_sharing(self, *, organisation: str, at: datetime, actor: dict[str, str]) -> None:
        """The family withdraws its consent to share the plan with ``organisation``: it is sent
        nothing more of the case and may fetch no copy (a later distribution may name it again)."""
        shared = self.sharing.get(organisation)
        if shared is None:
            raise InvalidFieldError(
                ("organisation",), f"the plan was never shared with {organisation!r}"
            )
        if shared["withdrawn_at"] is not None:
            raise DomainRuleError(f"sharing with {organisation!r} was already withdrawn")
        self._sharing_withdrawn(organisation=organisation, model=self.model, at=at, actor=actor)

    class SharingWithdrawn(Aggregate.Event):
        """The family's consent to share with ``organisation`` withdrawn (the first version)."""

        class_version = 1
        organisation: str
        model: str
        at: datetime
        actor: dict[str, str]

    @event(SharingWithdrawn)
    def _sharing_withdrawn(
        self, *, organisation: str, model: str, at: datetime, actor: dict[str, str]
    ) -> None:
        self.sharing[organisation]["withdrawn_at"] = at

    def shared_organisations(self) -> list[str]:
        """The organisations the plan is shared with now (consent not withdrawn)."""
        return [o for o, s in self.sharing.items() if s["withdrawn_at"] is None]

    def versions_shared_with(self, organisation: str) -> list[int]:
        """The versions ``organisation`` may fetch now (none once consent was withdrawn)."""
        shared = self.sharing.get(organisation)
        if shared is None or shared["withdrawn_at"] is not None:
            return []
        return list(shared["versions"])

    def distribution_blockers(self) -> list[str]:
        """Why the current version cannot go out now; empty when it can."""
        if self.stage is Stage.STOPPED:
            return ["the case was stopped before a conference: there is no plan to distribute"]
        if not self.versions:
            return ["there is no written plan to distribute"]
        version = self.versions[-1]["version"]
        blockers = []
        if self.distribution_of(version) is not None:
            blockers.append(f"version {version} was already distributed")
        if not self.request_known:
            blockers.append(
                "plans has not yet heard of the accepted request (language, minimum"
                " requirements): try again shortly"
            )
        if not self.accepted(version):
            blockers.append(
                f"version {version} has not been accepted by the family: record the acceptance"
            )
        if self.request_known and not self.clarification_known:
            blockers.append(
                "plans has not yet received the conference questions and minimum requirements"
                " from intake (they are printed on every copy): try again shortly"
            )
        if self.has_minimum_requirements:
            blockers += self._sign_off_blockers(version)
        return blockers

    def _sign_off_blockers(self, version: int) -> list[str]:
        blockers = []
        candidates: list[MinimumRequirement | None] = [*self.requirements] or [None]
        for requirement in candidates:
            requirement_id = requirement.requirement_id if requirement else None
            sign_off = self.sign_off_of(version, requirement_id)
            which = f" ({requirement_id})" if requirement_id else ""
            if sign_off is None:
                blockers.append(
                    f"a minimum requirement{which} was set: a professional must first record"
                    f" that version {version} meets it"
                )
            elif not sign_off["meets"]:
                blockers.append(
                    f"a professional found that version {version} does not meet the minimum"
                    f" requirement{which} ({sign_off['reason']}): write a new version and have"
                    " it signed off"
                )
        return blockers

    @event("Distributed")
    def _distributed(
        self,
        *,
        version: int,
        recipients: list[dict[str, Any]],
        shared_with_organisations: list[str],
        next_meeting_on: str | None,
        model: str,
        at: datetime,
        actor: dict[str, str],
        # Default: absent in events stored before agreements had ids.
        agreement_ids: list[str] | None = None,
    ) -> None:
        self.distributions.append(
            {
                "version": version,
                "recipients": recipients,
                "shared_with_organisations": shared_with_organisations,
                "at": at,
            }
        )
        for r in recipients:
            if "participant_id" in r:
                self.deliveries.append(
                    {
                        "version": version,
                        "participant_id": r["participant_id"],
                        "channel": r["channel"],
                        "status": DeliveryStatus.PENDING.value,
                        "detail": None,
                        "at": at,
                    }
                )
        self.stage = Stage.DISTRIBUTED

    # -- delivery records -------------------------------------------------------------------
    def record_handover(
        self,
        *,
        version: int,
        participant_id: str,
        channel: str,
        at: datetime,
        actor: dict[str, str],
    ) -> None:
        """The coordinator posted or handed over a copy (also instead of an e-mail that could
        not be sent)."""
        delivery = self.delivery(version, participant_id)
        if delivery is None:
            raise DomainRuleError(
                f"version {version} was not distributed to participant {participant_id!r}"
            )
        if delivery["status"] in DONE:
            raise DomainRuleError(
                f"the copy of version {version} for {participant_id!r} was already"
                f" {delivery['status']} ({delivery['channel']})"
            )
        self._delivery_recorded(
            version=version,
            participant_id=participant_id,
            channel=channel,
            status=DeliveryStatus.DELIVERED.value,
            detail=None,
            at=at,
            actor=actor,
        )

    def record_email_outcome(
        self,
        *,
        version: int,
        participant_id: str,
        status: DeliveryStatus,
        detail: str | None,
        at: datetime,
        actor: dict[str, str],
    ) -> bool:
        """The delivery worker's record of one e-mail. Idempotent: False if this copy already has
        an outcome (a second worker, or a retry after the record was stored)."""
        delivery = self.delivery(version, participant_id)
        if delivery is None or delivery["status"] != DeliveryStatus.PENDING.value:
            return False
        self._delivery_recorded(
            version=version,
            participant_id=participant_id,
            channel=Channel.EMAIL.value,
            status=status.value,
            detail=detail,
            at=at,
            actor=actor,
        )
        return True

    @event("DeliveryRecorded")
    def _delivery_recorded(
        self,
        *,
        version: int,
        participant_id: str,
        channel: str,
        status: str,
        detail: str | None,
        at: datetime,
        actor: dict[str, str],
    ) -> None:
        delivery = self.delivery(version, participant_id)
        if delivery is not None:
            delivery.update(channel=channel, status=status, detail=detail, at=at)

    # -- reading -----------------------------------------------------------------------------
    @property
    def current_version(self) -> int | None:
        return self.versions[-1]["version"] if self.versions else None

    def written_version(self, number: int) -> dict[str, Any]:
        if not 1 <= number <= len(self.versions):
            raise VersionNotFoundError(self.id, number)
        return self.versions[number - 1]

    def accepted(self, version: int) -> bool:
        return any(a["version"] == version for a in self.acceptances)

    def sign_off_of(self, version: int, requirement_id: str | None = None) -> dict[str, Any] | None:
        """The sign-off of ``version`` covering the requirement (any, without one); a sign-off
        recorded before plans knew the requirements covers them all."""
        return next(
            (
                s
                for s in self.sign_offs
                if s["version"] == version
                and (
                    requirement_id is None
                    or s["requirement_ids"] is None
                    or requirement_id in s["requirement_ids"]
                )
            ),
            None,
        )

    def distribution_of(self, version: int) -> dict[str, Any] | None:
        return next((d for d in self.distributions if d["version"] == version), None)

    def delivery(self, version: int, participant_id: str) -> dict[str, Any] | None:
        return next(
            (
                d
                for d in self.deliveries
                if d["version"] == version and d["participant_id"] == participant_id
            ),
            None,
        )

    def printed_name(self, participant_id: str) -> str | None:
        """The name a copy prints, or None: a participant whose name was not given, or who
        withdrew consent to share their details, is printed by role."""
        if participant_id in self.consent_withdrawn:
            return None
        return self.directory.get(participant_id, {}).get("name")

    # -- checks ------------------------------------------------------------------------------
    def check_not_stopped(self) -> None:
        if self.stage is Stage.STOPPED:
            raise DomainRuleError("the case was stopped before a conference: there is no plan")

    def check_request_known(self) -> None:
        if not self.request_known:
            raise DomainRuleError(
                "plans has not yet heard of the accepted request: try again shortly"
            )

    def check_current(self, version: int, wanted: str) -> None:
        if not self.versions:
            raise DomainRuleError("there is no written plan yet")
        current = self.versions[-1]["version"]
        if version != current:
            raise DomainRuleError(
                f"only the current version ({current}) can be {wanted}, not version {version}"
            )


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _number(agreement_id: str) -> int:
    digits = agreement_id.lstrip("a")
    return int(digits) if digits.isdigit() else 0


class PartnerDirectory(Aggregate):
    """Plans' copy of the partner registry (kept by the partners service): which organisation
    ids the family may consent to share with, and their names (to find an organisation's
    people among the participants). One aggregate, not a case."""

    @event("Opened")
    def __init__(self, id: UUID) -> None:
        #: organisation id -> {"name", "active"}
        self.partners: dict[str, dict[str, Any]] = {}

    @event("PartnerNoted")
    def note_registered(self, *, organisation: str, name: str, at: datetime) -> None:
        self.partners[organisation] = {"name": name, "active": True}

    @event("PartnerRevocationNoted")
    def note_revoked(self, *, organisation: str, at: datetime) -> None:
        if organisation in self.partners:
            self.partners[organisation]["active"] = False

    def is_active(self, organisation: str | None) -> bool:
        return organisation is not None and self.partners.get(organisation, {}).get("active", False)

    def names_of(self, organisation: str) -> list[str]:
        known = self.partners.get(organisation)
        return [known["name"]] if known else []

    def check_partner(self, organisation: str, loc: Sequence[str | int]) -> None:
        """``organisation`` is a partner's id now, or ``InvalidFieldError`` saying what it is."""
        known = self.partners.get(organisation)
        if known is not None and known["active"]:
            return
        if known is not None:
            raise InvalidFieldError(loc, f"{organisation!r} is no longer a partner (revoked)")
        meant = [
            f"{o!r} ({p['name']})"
            for o, p in self.partners.items()
            if p["active"] and fold(p["name"]) == fold(organisation)
        ]
        hint = (
            f"; did you mean {meant[0]}?"
            if meant
            else " (`kring partners list` names them; one registered just now is known here"
            " within seconds)"
        )
        raise InvalidFieldError(
            loc, f"unknown organisation {organisation!r}: not a partner's id{hint}"
        )
