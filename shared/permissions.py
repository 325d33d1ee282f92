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

Partners (``partner-<organisation>``) read only their own feed: a stream of their own
(``KRING_PARTNER_<organisation>``), whose name is a token of every JetStream API subject, so the
server tells one partner's feed from another's. A partner creates no consumer (a push consumer's
deliver subject is in the request's body, where no permission reaches: it could have the server
deliver anywhere in the account). The partners service makes one durable pull consumer, ``feed``,
on each partner's stream; the partner fetches from it, acks, resets it to a sequence (to replay),
and reads its stream with direct gets (from a sequence or a time). The partners service gets,
per partner, the right to make that stream and that consumer, and publishes the feeds. The
partner identities come from the passwords there are (``render_authorization``): adding one and
reloading the server changes nobody else's rights.

To add an identity (a lease's KV bucket), add it to ``identities()``; ``render_authorization``
and the README's table follow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shared.subjects import (
    DLQ_STREAM,
    PARTNER_CONSUMER,
    PARTNER_PREFIX,
    STREAM,
    claim_subject,
    dead_letter_subject,
    is_organisation_id,
    origin_subjects,
    partner_stream,
    partner_subjects,
    replay_request_subject,
)

#: Who follows whom: the durable consumers each service has (``<service>-from-<origin>``).
SERVICE_FOLLOWS: dict[str, tuple[str, ...]] = {
    "intake": ("followup",),
    "coordination": ("intake", "plans"),
    "plans": ("intake", "coordination", "followup", "partners"),
    "followup": ("plans", "intake", "coordination"),
    "partners": ("plans", "intake"),
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
#: A partner organisation's identity is ``partner-<organisation id>``.
PARTNER_IDENTITY_PREFIX = "partner-"
#: The service that keeps the registry and publishes the partners' feeds.
PARTNERS_SERVICE = "partners"

API = "$JS.API"


def durable_name(service: str, origin: str) -> str:
    """The durable consumer through which ``service`` follows ``origin``."""
    return f"{service}-from-{origin}"


def inbox_prefix(identity: str) -> str:
    """Where an identity's replies and push deliveries arrive; nobody else may read there."""
    return f"_INBOX.{identity}"


def claim_reply_prefix(asker: str) -> str:
    """Where the answers to ``asker``'s claim checks arrive: a part of its inbox that nothing
    else uses. The owner may publish there at any time, not only as a response to a request
    it received on the same connection (NATS's ``allow_responses``): an answer sent after the
    owner's connection reconnected would otherwise be refused."""
    return f"{inbox_prefix(asker)}.claims"


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


def claim_askers(service: str) -> tuple[str, ...]:
    """Who asks ``service``'s claims: it may answer into their claim-reply prefix."""
    return tuple(
        asker
        for asker, asked in SERVICE_CLAIMS.items()
        if any(owner == service for owner, _ in asked)
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
        *(f"{claim_reply_prefix(asker)}.>" for asker in claim_askers(service)),
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


def partner_identity_name(organisation: str) -> str:
    return f"{PARTNER_IDENTITY_PREFIX}{organisation}"


def partner_identity(organisation: str) -> Identity:
    """A partner reads its own feed and nothing else: no publish, no consumer of its own."""
    stream = partner_stream(organisation)
    return Identity(
        name=partner_identity_name(organisation),
        purpose=f"partner organisation {organisation}: reads its own feed ({stream}) and nothing"
        " else",
        publish=(
            f"{API}.STREAM.INFO.{stream}",
            f"{API}.STREAM.MSG.GET.{stream}",
            f"{API}.DIRECT.GET.{stream}",
            f"{API}.DIRECT.GET.{stream}.>",
            f"{API}.CONSUMER.INFO.{stream}.{PARTNER_CONSUMER}",
            f"{API}.CONSUMER.MSG.NEXT.{stream}.{PARTNER_CONSUMER}",
            f"{API}.CONSUMER.RESET.{stream}.{PARTNER_CONSUMER}",
            f"$JS.ACK.{stream}.{PARTNER_CONSUMER}.>",
        ),
        subscribe=(f"{inbox_prefix(partner_identity_name(organisation))}.>",),
    )


def partners_service_identity(partners: Iterable[str]) -> Identity:
    """The partners service: a service like the others, and the one that makes each partner's
    stream and its ``feed`` consumer and publishes the feeds."""
    base = service_identity(PARTNERS_SERVICE)
    extra: list[str] = [f"{PARTNER_PREFIX}.>"]
    for organisation in partners:
        stream = partner_stream(organisation)
        extra += [
            f"{API}.STREAM.INFO.{stream}",
            f"{API}.STREAM.CREATE.{stream}",
            f"{API}.STREAM.MSG.GET.{stream}",
            f"{API}.CONSUMER.INFO.{stream}.{PARTNER_CONSUMER}",
            f"{API}.CONSUMER.CREATE.{stream}.{PARTNER_CONSUMER}.{partner_subjects(organisation)}",
        ]
    return Identity(
        name=base.name,
        purpose=base.purpose + "; makes each partner's stream and feed consumer, publishes"
        " the partners' feeds",
        publish=(*base.publish, *extra),
        subscribe=base.subscribe,
        allow_responses=base.allow_responses,
        consumers=base.consumers,
    )


def partners_of(names: Iterable[str]) -> list[str]:
    """The organisations among identity names (``partner-<organisation>``), sorted."""
    found = []
    for name in names:
        if name.startswith(PARTNER_IDENTITY_PREFIX):
            organisation = name[len(PARTNER_IDENTITY_PREFIX) :]
            if not is_organisation_id(organisation):
                raise ValueError(f"{name!r} names no organisation id")
            found.append(organisation)
    return sorted(found)


def identities(partners: Iterable[str] = ()) -> list[Identity]:
    """Every identity that may connect, with what it may do: the fixed ones, and one per
    partner organisation of ``partners``."""
    partners = sorted(set(partners))
    return [
        *(
            partners_service_identity(partners)
            if service == PARTNERS_SERVICE
            else service_identity(service)
            for service in SERVICES
        ),
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
        *(partner_identity(organisation) for organisation in partners),
    ]


def identity(name: str) -> Identity:
    for candidate in identities(partners_of([name])):
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def names() -> list[str]:
    """The fixed identities (partners come and go: ``partner_identity_name``)."""
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
    for who in identities(partners_of(hashes)):
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


#: How the README's table shows the rights each partner adds: one example organisation.
EXAMPLE_PARTNER = "org"


def markdown_table() -> str:
    """The table as README shows it (a test keeps the two the same), with one partner
    (``partner-org``) standing for each."""
    rows = [
        "| identity | for | may publish | may subscribe |",
        "|---|---|---|---|",
    ]
    for who in identities([EXAMPLE_PARTNER]):
        publish = "<br>".join(f"`{s}`" for s in who.publish)
        subscribe = "<br>".join(f"`{s}`" for s in who.subscribe)
        if who.allow_responses:
            subscribe += "<br>(and answers requests it receives)"
        rows.append(f"| `{who.name}` | {who.purpose} | {publish} | {subscribe} |")
    return "\n".join(rows) + "\n"
