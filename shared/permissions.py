"""Who may publish and subscribe what on NATS: the one table, rendered into nats-server's config.

Every process connects as one identity. A service publishes only its own events
(``kring.<origin>.>``) and its own dead letters, creates and reads only its own durable
consumers (their names and filters are part of the JetStream API subject, so the server checks
them), and reads replies only under its own inbox prefix. ``operator`` lists dead letters and
asks a service to replay one; ``analyst`` only reads KRING; ``admin`` alone may update, purge or
delete streams and consumers. Nobody but a service may publish an event, not even ``admin``.

Facts about JetStream's API that shape the table (checked against nats-server 2.15 and the
clients Kring uses; ``tests/integration/test_closed_bus.py`` holds each of them):

- A durable consumer may be created under ``$JS.API.CONSUMER.DURABLE.CREATE.<stream>.<name>``,
  which does not name its filter: nobody gets that subject but ``admin``. Services create theirs
  under ``$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>``; the server refuses a body whose
  filter differs from the subject's, so the permission pins both name and filter.
- ``$JS.API.CONSUMER.CREATE.<stream>`` (what nats-py sends for an ordered or ephemeral consumer)
  takes a consumer ``name`` in the body and *updates* an existing consumer of that name while
  nobody is bound to it: a reader allowed it could point a stopped service's durable at its own
  inbox and take its events. So readers create no consumers at all; they read with direct get
  (``$JS.API.DIRECT.GET.<stream>``, batches, read-only: ``shared.stream_read``).
- Acks go to ``$JS.ACK.<stream>.<consumer>.…``: a service may ack only its own consumers.
- JetStream answers every request on the requester's reply inbox; nats-py and faststream make
  inboxes under ``inbox_prefix`` (default ``_INBOX``), including a push consumer's deliver
  subject. Each identity gets its own prefix and may subscribe only under it.

To add an identity (a partner reading its own feed, a lease's KV bucket), add it to
``identities()``; ``render_authorization`` and the README's table follow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shared.subjects import (
    DLQ_STREAM,
    STREAM,
    claim_subject,
    dead_letter_subject,
    origin_subjects,
    replay_request_subject,
)

#: Who follows whom: the durable consumers each service has (``<service>-from-<origin>``).
SERVICE_FOLLOWS: dict[str, tuple[str, ...]] = {
    "intake": ("followup",),
    "coordination": ("intake", "plans"),
    "plans": ("intake", "coordination", "followup"),
    "followup": ("plans", "intake", "coordination"),
}
SERVICES: tuple[str, ...] = tuple(SERVICE_FOLLOWS)
#: Claim checks (``shared.claims``): who asks whom for what, over core NATS, never a stream.
#: The owner alone answers (its subscription), the asker alone may ask (its publish).
SERVICE_CLAIMS: dict[str, tuple[tuple[str, str], ...]] = {
    "plans": (("intake", "clarification"),),
}
OPERATOR = "operator"
ANALYST = "analyst"
ADMIN = "admin"

API = "$JS.API"


def durable_name(service: str, origin: str) -> str:
    """The durable consumer through which ``service`` follows ``origin``."""
    return f"{service}-from-{origin}"


def inbox_prefix(identity: str) -> str:
    """Where an identity's replies and push deliveries arrive; nobody else may read there."""
    return f"_INBOX.{identity}"


def follows(service: str) -> tuple[str, ...]:
    return SERVICE_FOLLOWS[service]


def claims_asked(service: str) -> tuple[str, ...]:
    """The claim subjects ``service`` may ask on."""
    return tuple(claim_subject(owner, what) for owner, what in SERVICE_CLAIMS.get(service, ()))


def claims_answered(service: str) -> tuple[str, ...]:
    """The claim subjects ``service`` answers (only it may subscribe to them)."""
    return tuple(
        claim_subject(owner, what)
        for asked in SERVICE_CLAIMS.values()
        for owner, what in asked
        if owner == service
    )


@dataclass(frozen=True)
class Identity:
    name: str
    #: What it is for, in a few words (the README's table).
    purpose: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    #: May answer requests it received (a service answering the operator's replay request).
    allow_responses: bool = False
    #: The JetStream consumers it owns (name, filter subject).
    consumers: tuple[tuple[str, str], ...] = field(default=())


def _stream_reads(stream: str) -> tuple[str, ...]:
    """Read-only: stream info, one message by sequence or subject, direct get in batches."""
    return (
        f"{API}.STREAM.INFO.{stream}",
        f"{API}.STREAM.MSG.GET.{stream}",
        f"{API}.DIRECT.GET.{stream}",
        f"{API}.DIRECT.GET.{stream}.>",
    )


def service_identity(service: str) -> Identity:
    consumers = tuple(
        (durable_name(service, origin), origin_subjects(origin)) for origin in follows(service)
    )
    publish = [
        origin_subjects(service),
        *(dead_letter_subject(name) for name, _ in consumers),
        # The streams are made by the first service that finds them missing (``kring run``
        # stays one command; a lost stream comes back with the relays). A create never
        # changes an existing stream: only admin may update, purge or delete.
        f"{API}.STREAM.INFO.{STREAM}",
        f"{API}.STREAM.INFO.{DLQ_STREAM}",
        f"{API}.STREAM.CREATE.{STREAM}",
        f"{API}.STREAM.CREATE.{DLQ_STREAM}",
        # The relay: the last position it published, and what the server holds under an id
        # it answers "duplicate" for (any subject: an id may be taken on another subject).
        f"{API}.STREAM.MSG.GET.{STREAM}",
        f"{API}.DIRECT.GET.{STREAM}",
        *claims_asked(service),
    ]
    for name, subject in consumers:
        publish += [
            f"{API}.CONSUMER.INFO.{STREAM}.{name}",
            f"{API}.CONSUMER.CREATE.{STREAM}.{name}.{subject}",
            f"$JS.ACK.{STREAM}.{name}.>",
        ]
    return Identity(
        name=service,
        purpose=f"the {service} service: publishes its own events, follows "
        + ", ".join(follows(service)),
        publish=tuple(publish),
        subscribe=(
            f"{inbox_prefix(service)}.>",
            *(replay_request_subject(name) for name, _ in consumers),
            *claims_answered(service),
        ),
        allow_responses=True,
        consumers=consumers,
    )


def identities() -> list[Identity]:
    """Every identity that may connect, with what it may do."""
    return [
        *(service_identity(service) for service in SERVICES),
        Identity(
            name=OPERATOR,
            purpose="the CLI's operator: dead letters (list, ask the owning service to replay, "
            "remove), stream and consumer info",
            publish=(
                f"{API}.INFO",
                f"{API}.STREAM.INFO.{STREAM}",
                f"{API}.CONSUMER.NAMES.{STREAM}",
                f"{API}.CONSUMER.LIST.{STREAM}",
                f"{API}.CONSUMER.INFO.{STREAM}.*",
                *_stream_reads(DLQ_STREAM),
                f"{API}.STREAM.MSG.DELETE.{DLQ_STREAM}",
                *(
                    replay_request_subject(name)
                    for service in SERVICES
                    for name, _ in service_identity(service).consumers
                ),
            ),
            subscribe=(f"{inbox_prefix(OPERATOR)}.>",),
        ),
        Identity(
            name=ANALYST,
            purpose="reads KRING and nothing else (replays, exports, the demo's event view)",
            publish=_stream_reads(STREAM),
            subscribe=(f"{inbox_prefix(ANALYST)}.>",),
        ),
        Identity(
            name=ADMIN,
            purpose="stream and consumer administration: the only one that may update, purge "
            "or delete streams; publishes no event",
            # Every JetStream API request, and the flow-control replies of an ordered consumer;
            # no ``kring.>``: even admin cannot put an event on the stream.
            publish=(f"{API}.>", "$JS.FC.>"),
            subscribe=(f"{inbox_prefix(ADMIN)}.>",),
        ),
    ]


def identity(name: str) -> Identity:
    for candidate in identities():
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def names() -> list[str]:
    return [candidate.name for candidate in identities()]


def _quoted(subjects: Iterable[str]) -> str:
    return ", ".join(f'"{subject}"' for subject in subjects)


def render_authorization(hashes: Mapping[str, str]) -> str:
    """nats-server's ``authorization`` block for the given bcrypt hashes (identity → hash), one
    user per identity of the table. Allow lists only: whatever is not listed is refused, and
    with users defined nats-server refuses anonymous connections."""
    missing = [name for name in names() if name not in hashes]
    if missing:
        raise KeyError(f"no password hash for {', '.join(missing)}")
    lines = ["authorization {", "  users: ["]
    for who in identities():
        lines += [
            "    {",
            f'      user: "{who.name}"',
            f'      password: "{hashes[who.name]}"',
            "      permissions: {",
            f"        publish: {{ allow: [{_quoted(who.publish)}] }}",
            f"        subscribe: {{ allow: [{_quoted(who.subscribe)}] }}",
        ]
        if who.allow_responses:
            lines.append("        allow_responses: true")
        lines += ["      }", "    }"]
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The table as README shows it (a test keeps the two the same)."""
    rows = [
        "| identity | for | may publish | may subscribe |",
        "|---|---|---|---|",
    ]
    for who in identities():
        publish = "<br>".join(f"`{s}`" for s in who.publish)
        subscribe = "<br>".join(f"`{s}`" for s in who.subscribe)
        if who.allow_responses:
            subscribe += "<br>(and answers requests it receives)"
        rows.append(f"| `{who.name}` | {who.purpose} | {publish} | {subscribe} |")
    return "\n".join(rows) + "\n"
