"""The field's own questions, answered from the facts of the cases.

The cases counted are the requests made in the window (a cohort, by the day the request was
made), and everything that happened to them since, up to the end of the stream read: "of all
requests, how many led to a conference" needs every request to have had its chance. A case the
stream shows no request for (made before requests were published, or outside the stream's
memory) is counted apart (``without_request``), never mixed in.

No I/O: ``kring.analytics.report`` draws and writes what this computes.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from kring.analytics.facts import (
    CaseFacts,
    Fold,
    Months,
    OutcomeFact,
    RatingFact,
    Sink,
    in_window,
)


class GroupBy(StrEnum):
    MODEL = "model"
    REGION = "region"
    MONTH = "month"


#: The steps from request to follow-up, and who reached each.
FUNNEL: tuple[tuple[str, Callable[[CaseFacts], bool]], ...] = (
    ("requested", lambda f: True),
    ("accepted", lambda f: f.accepted_at is not None),
    ("coordinator_assigned", lambda f: f.assigned_at is not None),
    ("first_contact", lambda f: f.contacted_at is not None),
    ("plan_made", lambda f: f.made_a_plan),
    ("plan_distributed", lambda f: f.distributed_at is not None),
    ("followed_up", lambda f: f.outcome_recorded_at is not None),
)

#: Lead times from the request (not from acceptance).
LEAD_TIMES: tuple[tuple[str, Callable[[CaseFacts], float | None]], ...] = (
    ("to_first_contact", lambda f: f.days_from_request(f.contacted_at)),
    ("to_conference", lambda f: f.days_from_request(f.held_on)),
    ("to_plan_distributed", lambda f: f.days_from_request(f.distributed_at)),
)

AGREEMENT_RESULTS = ("kept", "partly_kept", "not_kept")
RATING_GROUPS = ("family_network", "professional")


class Collected(Sink):
    """The report's sink: the outcomes and ratings, in memory."""

    def __init__(self) -> None:
        self.outcomes: list[OutcomeFact] = []
        self.ratings: list[RatingFact] = []

    def outcome(self, row: OutcomeFact) -> None:
        self.outcomes.append(row)

    def rating(self, row: RatingFact) -> None:
        self.ratings.append(row)

    # An erased case's outcomes and ratings stay here, unread: only the cases still in the fold
    # are counted (``figures``), so nothing needs taking out (which cost a pass per erasure).


@dataclass(frozen=True)
class Spread:
    """A distribution of numbers, as a report shows it (``values`` in order)."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        return cls(tuple(sorted(values)))

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def minimum(self) -> float | None:
        return min(self.values) if self.values else None

    @property
    def maximum(self) -> float | None:
        return max(self.values) if self.values else None

    def quantile(self, q: float) -> float | None:
        """Linear interpolation between the closest ranks (as a spreadsheet computes it)."""
        if not self.values:
            return None
        ordered = sorted(self.values)
        position = (len(ordered) - 1) * q
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    def share_between(self, low: float, high: float) -> float | None:
        if not self.values:
            return None
        return sum(1 for v in self.values if low <= v <= high) / len(self.values)


@dataclass
class Figures:
    """Every figure of the report for one set of cases."""

    requests: int
    funnel: list[tuple[str, int]]
    outcomes: Counter[str]
    stop_reasons: Counter[str]
    stop_stages: Counter[str]
    lead_times: dict[str, Spread]
    attended: Spread
    children: Spread
    conferences_with_children: int
    #: contact kind -> result -> agreements; "all" is every contact
    agreements: dict[str, Counter[str]]
    #: contact kind -> (reached, contacts)
    contacts: dict[str, tuple[int, int]]
    #: (group, "meeting" | "plan") -> marks
    ratings: dict[tuple[str, str], Spread]
    follow_up_conferences_requested: int
    requests_for_a_follow_up: int
    #: month -> (requests made, conferences held, plans distributed)
    monthly: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def share(self, outcome: str) -> float | None:
        return self.outcomes[outcome] / self.requests if self.requests else None


@dataclass
class Answer:
    """The report's figures: overall, and by group when asked."""

    since: datetime | None
    until: datetime | None
    overall: Figures
    by: GroupBy | None
    groups: dict[str, Figures]
    without_request: int
    erased: int
    events: int
    last_event_at: datetime | None


def answer(
    fold: Fold,
    collected: Collected,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    by: GroupBy | None = None,
) -> Answer:
    months = Months()
    cohort = [f for f in fold.cases.values() if f.submitted_at is not None]
    chosen = [f for f in cohort if in_window(f.submitted_at, since, until)]
    groups: dict[str, list[CaseFacts]] = {}
    if by is not None:
        for facts in chosen:
            groups.setdefault(_group_of(facts, by, months), []).append(facts)
    return Answer(
        since=since,
        until=until,
        overall=figures(chosen, collected.outcomes, collected.ratings, months),
        by=by,
        groups={
            name: figures(cases, collected.outcomes, collected.ratings, months)
            for name, cases in sorted(groups.items())
        },
        without_request=len(fold.cases) - len(cohort),
        erased=len(fold.erased),
        events=fold.folded,
        last_event_at=fold.last_time,
    )


def _group_of(facts: CaseFacts, by: GroupBy, months: Months) -> str:
    if by is GroupBy.MODEL:
        return facts.model
    if by is GroupBy.REGION:
        return facts.region or "?"
    assert facts.submitted_at is not None
    return months.of(facts.submitted_at)


def figures(
    cases: Sequence[CaseFacts],
    outcomes: Iterable[OutcomeFact],
    ratings: Iterable[RatingFact],
    months: Months | None = None,
) -> Figures:
    months = months or Months()
    keys = {f.case for f in cases}
    held = [f for f in cases if f.attended is not None]
    agreements: dict[str, Counter[str]] = {"all": Counter()}
    contacts: dict[str, list[int]] = {"all": [0, 0]}
    for outcome in outcomes:
        if outcome.case not in keys:
            continue
        kind = outcome.kind or "contact"
        for name in ("all", kind):
            counted = contacts.setdefault(name, [0, 0])
            counted[0] += int(outcome.reached)
            counted[1] += 1
            agreements.setdefault(name, Counter()).update(outcome.agreements.values())
    marks: dict[tuple[str, str], list[float]] = {
        (group, what): [] for group in RATING_GROUPS for what in ("meeting", "plan")
    }
    for rating in ratings:
        if rating.case not in keys:
            continue
        if rating.meeting is not None:
            marks.setdefault((rating.by, "meeting"), []).append(rating.meeting)
        if rating.plan is not None:
            marks.setdefault((rating.by, "plan"), []).append(rating.plan)
    monthly: dict[str, list[int]] = {}
    for f in cases:
        if f.submitted_at is not None:
            monthly.setdefault(months.of(f.submitted_at), [0, 0, 0])[0] += 1
        if f.held_on is not None:
            monthly.setdefault(months.of(f.held_on), [0, 0, 0])[1] += 1
        if f.distributed_at is not None:
            monthly.setdefault(months.of(f.distributed_at), [0, 0, 0])[2] += 1
    return Figures(
        requests=len(cases),
        funnel=[(step, sum(1 for f in cases if reached(f))) for step, reached in FUNNEL],
        outcomes=Counter(f.outcome.value for f in cases),
        stop_reasons=Counter(reason for f in cases if (reason := f.why_stopped) is not None),
        stop_stages=Counter(stage.value for f in cases if (stage := f.stop_stage) is not None),
        lead_times={
            label: Spread.of(d for f in cases if (d := days(f)) is not None)
            for label, days in LEAD_TIMES
        },
        attended=Spread.of(float(f.attended) for f in held if f.attended is not None),
        children=Spread.of(float(f.children or 0) for f in held),
        conferences_with_children=sum(1 for f in held if f.children),
        agreements=agreements,
        contacts={kind: (reached, total) for kind, (reached, total) in contacts.items()},
        ratings={key: Spread.of(values) for key, values in marks.items()},
        follow_up_conferences_requested=sum(f.follow_up_conferences for f in cases),
        requests_for_a_follow_up=sum(1 for f in cases if f.follow_up_of is not None),
        monthly={month: (a, b, c) for month, (a, b, c) in sorted(monthly.items())},
    )


@dataclass(frozen=True)
class Reference:
    """A published figure of the field, shown beside ours. ``source`` names a ``SOURCES`` key."""

    value: float | None
    nl: str
    en: str
    source: str


#: Where each published figure comes from, in our words.
SOURCES: dict[str, dict[str, str]] = {
    "ekc-2023": {
        "nl": "Eigen Kracht Centrale, jaarcijfers 2023: het jaarrapport over alle Eigen"
        " Kracht-conferenties van 2023, opgesteld door onderzoeker P. Gramberg en aangekondigd"
        " op eigen-kracht.nl. Het gaat om alle aanmeldingen van dat jaar.",
        "en": "Eigen Kracht Centrale, figures for 2023: the yearly report on all Eigen Kracht"
        " conferences of 2023, compiled by researcher P. Gramberg and announced on"
        " eigen-kracht.nl. It covers every request of that year.",
    },
    "ekc-site": {
        "nl": "Eigen Kracht Centrale, eigen website (\u2018snel inzetbaar\u2019): voor"
        " voorbereiding en uitvoering staan zo\u2019n zes tot tien weken.",
        "en": "Eigen Kracht Centrale's own site ('quick to deploy'): preparation and the"
        " conference take some six to ten weeks.",
    },
    "movisie": {
        "nl": "Movisie, methodebeschrijving Eigen Kracht-conferentie: het merendeel van de"
        " afspraken wordt geheel of gedeeltelijk uitgevoerd; plannen maken lukt vaker dan ze"
        " uitvoeren.",
        "en": "Movisie, description of the Eigen Kracht conference method: most agreements are"
        " carried out fully or in part; plans are more often made than carried out.",
    },
}

#: The published figures, by what they stand beside.
REFERENCES: dict[str, Reference] = {
    "conference": Reference(0.70, "70% van de aanmeldingen", "70% of requests", "ekc-2023"),
    "plan_without_meeting": Reference(
        0.16, "16% van de aanmeldingen", "16% of requests", "ekc-2023"
    ),
    "stopped": Reference(
        0.14,
        "14% zonder plan (100% min de 86% met een plan)",
        "14% without a plan (100% less the 86% with one)",
        "ekc-2023",
    ),
    "fastest_to_conference": Reference(
        4, "kortste tijd van aanmelding tot bijeenkomst: 4 dagen", "fastest: 4 days", "ekc-2023"
    ),
    "weeks_to_conference": Reference(
        None,
        "voorbereiding en conferentie: 6 tot 10 weken (42\u201370 dagen)",
        "preparation and conference: 6 to 10 weeks (42\u201370 days)",
        "ekc-site",
    ),
    "attended": Reference(
        9, "gemiddeld 9 personen per bijeenkomst", "9 people per meeting on average", "ekc-2023"
    ),
    "children": Reference(
        0.68,
        "68% van de aanmeldingen ging (ook) over minderjarigen (over wie, niet wie er kwam)",
        "68% of requests were (also) about minors (whom it is about, not who came)",
        "ekc-2023",
    ),
    "agreements": Reference(
        None,
        "het merendeel geheel of gedeeltelijk uitgevoerd",
        "most carried out fully or in part",
        "movisie",
    ),
    "family_network:meeting": Reference(8.3, "8,3", "8.3", "ekc-2023"),
    "family_network:plan": Reference(8.4, "8,4", "8.4", "ekc-2023"),
    "professional:meeting": Reference(7.7, "7,7", "7.7", "ekc-2023"),
    "professional:plan": Reference(7.3, "7,3", "7.3", "ekc-2023"),
}
