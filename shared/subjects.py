"""Stream and subject names: the one place they are spelled (docs/architecture.md, "The event
contract").

Integration events live in the ``KRING`` stream under ``kring.<origin>.<event>``; a consumer
subscribes to the origins it follows. Dead letters live in their own stream so a replay of
``KRING`` never meets them.
"""

from __future__ import annotations

STREAM = "KRING"
SUBJECT_PREFIX = "kring"
ALL_SUBJECTS = f"{SUBJECT_PREFIX}.>"

DLQ_STREAM = "KRING_DLQ"
DLQ_PREFIX = "kring-dlq"
DLQ_SUBJECTS = f"{DLQ_PREFIX}.>"

#: Requests to a service (core NATS, no stream): the operator asks it to replay a dead letter.
OPS_PREFIX = "kring-ops"


#: Claim checks between services (core NATS, no stream): one service asks another for case data
#: it must not find on the stream (``shared.claims``).
CLAIM_PREFIX = "kring-claim"


def claim_subject(owner: str, what: str) -> str:
    """Where ``owner`` answers requests for ``what`` of a case."""
    return f"{CLAIM_PREFIX}.{owner}.{what}"


def event_subject(origin: str, slug: str) -> str:
    """The subject an origin publishes one kind of event on."""
    return f"{SUBJECT_PREFIX}.{origin}.{slug}"


def origin_subjects(origin: str) -> str:
    """Every subject one origin publishes on (what its followers subscribe to)."""
    return f"{SUBJECT_PREFIX}.{origin}.>"


def dead_letter_subject(consumer: str) -> str:
    """Where a consumer parks the messages it cannot process."""
    return f"{DLQ_PREFIX}.{consumer}"


def replay_request_subject(consumer: str) -> str:
    """Where the service owning ``consumer`` takes requests to replay one of its dead letters."""
    return f"{OPS_PREFIX}.replay.{consumer}"
