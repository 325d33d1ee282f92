"""Stream and subject names: the one place they are spelled (docs/architecture.md, "The event
contract").

Integration events live in the ``KRING`` stream under ``kring.<origin>.<event>``; a consumer
subscribes to the origins it follows. Dead letters live in their own stream so a replay of
``KRING`` never meets them.
"""

from __future__ import annotations

import re

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


#: A partner organisation's id: what the family consents to share with, and a token of its
#: stream's name and subjects (so lower-case letters, digits and hyphens only, as in a DNS label:
#: ``jeugdzorg-utrecht``, or an OIN ``00000001003214345000``).
ORGANISATION_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
#: Each partner's own feed: a stream of its own, whose name every JetStream API subject carries,
#: so the server's permissions keep one partner's feed from another's (``shared.permissions``).
PARTNER_STREAM_PREFIX = "KRING_PARTNER_"
PARTNER_PREFIX = "kring-partner"
#: The durable pull consumer the partners service makes on each partner's stream.
PARTNER_CONSUMER = "feed"


def is_organisation_id(text: str) -> bool:
    return ORGANISATION_ID.fullmatch(text) is not None


def partner_stream(organisation: str) -> str:
    return f"{PARTNER_STREAM_PREFIX}{organisation}"


def partner_subjects(organisation: str) -> str:
    """Every subject of one partner's feed."""
    return f"{PARTNER_PREFIX}.{organisation}.>"


def partner_subject(organisation: str, slug: str) -> str:
    return f"{PARTNER_PREFIX}.{organisation}.{slug}"
