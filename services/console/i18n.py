"""Dutch first, English on request: the console's catalogues and the names of the services'
values (stages, roles, models, …) in both.

The messages are written in English in the templates and here (``N_``), and each catalogue
(``locale/<language>/LC_MESSAGES/messages.po``, committed) gives them in its language. The
catalogues are compiled in memory when the console starts: there is no build step. A value a
service sends that has no name here yet (a stage or a role added later) is shown as it came.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = ("nl", "en")
DEFAULT_LANGUAGE = "nl"
LOCALE_DIR = Path(__file__).parent / "locale"


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "mark, translate later"
    return message


#: The services' values, by kind, with their English name (the catalogues translate these).
LABELS: dict[str, dict[str, str]] = {
    "stage": {
        "submitted": N_("submitted"),
        "clarified": N_("clarified"),
        "accepted": N_("accepted"),
        "withdrawn": N_("withdrawn"),
        "waiting_for_coordinator": N_("waiting for a coordinator"),
        "coordinator_assigned": N_("coordinator assigned"),
        "preparing": N_("preparing"),
        "conference_scheduled": N_("conference scheduled"),
        "conference_held": N_("conference held"),
        "stopped": N_("stopped"),
        "plan_without_meeting": N_("plan without a meeting"),
        "awaiting_conference": N_("awaiting the conference"),
        "plan_written": N_("plan written"),
        "plan_distributed": N_("plan distributed"),
        "follow_up_scheduled": N_("follow-up scheduled"),
        "follow_up_due": N_("follow-up due"),
        "followed_up": N_("followed up"),
    },
    "model": {
        "family": N_("family group conference"),
        "group": N_("group conference"),
        "restorative": N_("restorative conference"),
        "learning_circle": N_("learning circle"),
    },
    "role": {
        "central_person": N_("central person"),
        "family": N_("family"),
        "network": N_("network"),
        "child": N_("child"),
        "professional": N_("professional"),
        "expert": N_("expert"),
        "victim": N_("victim"),
        "offender": N_("offender"),
        "pupil": N_("pupil"),
        "teacher": N_("teacher"),
    },
    "talk": {
        "go_ahead": N_("the family goes ahead"),
        "think_it_over": N_("the family thinks it over"),
        "no": N_("the family does not want a conference"),
    },
    "invitation": {
        "invited": N_("invited"),
        "confirmed": N_("confirmed"),
        "declined": N_("declined"),
        "withdrawn": N_("withdrew"),
    },
    "relation": {
        "self": N_("the person themself"),
        "family": N_("family"),
        "neighbour": N_("neighbour"),
        "teacher": N_("teacher"),
        "care_worker": N_("care worker"),
        "police": N_("police"),
        "other": N_("other"),
    },
    "payer": {
        "municipality": N_("municipality"),
        "province": N_("province"),
        "school": N_("school"),
        "institution": N_("institution"),
        "other": N_("other"),
    },
    "funding_status": {
        "requested": N_("requested"),
        "approved": N_("approved"),
        "refused": N_("refused"),
    },
    "part": {
        "information": N_("part 1: information"),
        "plan_making": N_("part 2: making the plan"),
        "presentation": N_("part 3: presenting the plan"),
    },
    "ending": {
        "stopped": N_("stopped"),
        "plan_without_meeting": N_("plan made without a meeting"),
    },
    "stop_reason": {
        "request_withdrawn": N_("the request was withdrawn"),
        "network_not_willing": N_("the network is not willing"),
        "safety": N_("safety"),
        "no_coordinator": N_("no coordinator"),
        "other": N_("other"),
    },
    "outcome": {
        "kept": N_("kept"),
        "partly_kept": N_("partly kept"),
        "not_kept": N_("not kept"),
    },
    "channel": {
        "email": N_("e-mail"),
        "post": N_("post"),
        "by_hand": N_("by hand"),
    },
    "delivery": {
        "pending": N_("waiting to be sent"),
        "sent": N_("sent"),
        "delivered": N_("delivered"),
        "not_sent": N_("not sent"),
        "failed": N_("failed"),
    },
    "timer": {
        "coordinator_call": N_("the coordinator's call"),
        "research": N_("research contact"),
        "next_meeting_reminder": N_("reminder of the next meeting"),
        "next_meeting": N_("the family's next meeting"),
    },
    #: The first requirement a coordinator the choice passed over did not meet (``wish:<name>``
    #: is shown with the wish's name).
    "passed_over": {
        "language": N_("does not speak one of the family's languages"),
        "independence": N_("not independent for this case"),
        "availability": N_("not available"),
        "room": N_("no room: at capacity"),
        "ranked_lower": N_("fitted, but others came first"),
    },
    "rating_group": {
        "family_network": N_("family and network"),
        "professional": N_("a professional"),
    },
    "service": {
        "intake": N_("intake"),
        "coordination": N_("coordination"),
        "plans": N_("plans"),
        "followup": N_("follow-up"),
    },
    #: A timeline entry, by ``<service>.<event>`` (an event not named here shows its type).
    "event": {
        "intake.Submitted": N_("the request was submitted"),
        "intake.Clarified": N_("the request was clarified"),
        "intake.Accepted": N_("the request was accepted"),
        "intake.Withdrawn": N_("the request was withdrawn"),
        "intake.FollowUpOpened": N_("a follow-up conference was opened"),
        "intake.ClosedForErasure": N_("the case was erased"),
        "intake.InformationalTalkHeld": N_("the informational talk was held"),
        "coordination.Received": N_("coordination received the case"),
        "coordination.Opened": N_("coordination opened the case"),
        "coordination.WaitingForCoordinator": N_("waiting for a coordinator"),
        "coordination.CoordinatorAssigned": N_("a coordinator was assigned"),
        "coordination.CoordinatorsReleased": N_("the coordinators were released"),
        "coordination.FirstContactMade": N_("first contact was made"),
        "coordination.FirstContactOverdue": N_("the first contact became overdue"),
        "coordination.ParticipantInvited": N_("a participant was invited"),
        "coordination.ParticipantInformed": N_("a participant was informed"),
        "coordination.ParticipantNotInformed": N_("a participant could not be informed"),
        "coordination.ParticipantConfirmed": N_("a participant confirmed"),
        "coordination.ParticipantDeclined": N_("a participant declined"),
        "coordination.ConsentWithdrawn": N_("a participant withdrew consent"),
        "coordination.InformationNeeded": N_("information needed was noted"),
        "coordination.ArrangementsRecorded": N_("the arrangements were recorded"),
        "coordination.ConferenceScheduled": N_("the conference was scheduled"),
        "coordination.ConferenceHeld": N_("the conference was held"),
        "coordination.EndedWithoutConference": N_("the case ended without a conference"),
        "coordination.RequestWithdrawalNoted": N_("the withdrawal of the request was noted"),
        "coordination.RelationDeclared": N_("a coordinator declared a relation to the case"),
        "coordination.CoordinatorTaskEnded": N_("the coordinator's task ended"),
        "plans.Opened": N_("plans opened the case"),
        "plans.RequestNoted": N_("plans noted the request"),
        "plans.CoordinatorNoted": N_("plans noted the coordinator"),
        "plans.ConferenceNoted": N_("plans noted the conference"),
        "plans.RecipientsRecorded": N_("who gets a copy was recorded"),
        "plans.Written": N_("a version of the plan was written"),
        "plans.Accepted": N_("the family accepted the plan"),
        "plans.SignedOff": N_("the plan was signed off"),
        "plans.SignatoryNamed": N_("a professional was named to sign off"),
        "plans.ClarificationNoted": N_("plans noted the clarification"),
        "plans.Distributed": N_("the plan was distributed"),
        "plans.Shared": N_("the plan was shared with partner organisations"),
        "plans.SharingWithdrawn": N_("sharing the plan with an organisation was withdrawn"),
        "plans.RevisionRequestNoted": N_("plans noted that a revised plan was asked for"),
        "plans.DeliveryRecorded": N_("a copy's delivery was recorded"),
        "plans.ConsentWithdrawalNoted": N_("a withdrawn consent was noted"),
        "plans.EndedWithoutConference": N_("plans noted the end without a conference"),
        "followup.Opened": N_("the follow-up was opened"),
        "followup.Scheduled": N_("a follow-up contact was scheduled"),
        "followup.Due": N_("a follow-up contact came due"),
        "followup.Cancelled": N_("a follow-up contact was cancelled"),
        "followup.OutcomeRecorded": N_("a contact's outcome was recorded"),
        "followup.MeetingRecorded": N_("the family's next meeting was recorded"),
        "followup.NextMeetingSet": N_("the next meeting was set"),
        "followup.RatingsRecorded": N_("marks were recorded"),
        "followup.PlanRevisionRequested": N_("a revised plan was asked for"),
        "followup.RevisedPlanNoted": N_("a revised plan was noted"),
        "followup.FollowUpConferenceRequested": N_("a follow-up conference was asked for"),
    },
    "account_role": {
        "regional_manager": N_("regional manager"),
        "coordinator": N_("coordinator"),
        "researcher": N_("researcher"),
        "professional": N_("professional"),
        "operator": N_("operator"),
        "requester": N_("requester"),
        "participant": N_("participant"),
    },
}


def translations(language: str) -> Translations:
    """The language's catalogue, compiled here from its ``.po`` file."""
    with (LOCALE_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source, locale=language)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(fp=compiled)


def labeller(gettext: Callable[[str], str]) -> Callable[[str, object], str]:
    """``label(kind, value)``: a service's value by its name in the language, or as it came."""

    def label(kind: str, value: object) -> str:
        if value is None:
            return ""
        known = LABELS.get(kind, {}).get(str(value))
        return gettext(known) if known else str(value)

    return label
