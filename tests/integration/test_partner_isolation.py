"""Partner organisations on a real nats-server, with the configuration ``kring run`` writes: each
partner reads its own feed and nothing else, tried with a real client (nats-py) as partner A
against everything of partner B, of KRING and of its own feed it may not touch. Each refusal is
the server's (a "Permissions Violation"); each test also checks what was refused did not happen,
and that adding, rotating and revoking a partner takes effect on the running server (a reload)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from services.partners.feed import ensure_feed
from shared.permissions import inbox_prefix, partner_identity_name
from shared.stream_read import read_all
from shared.subjects import PARTNER_CONSUMER, STREAM, partner_stream, partner_subject
from tests.harness import eventually
from tests.integration.test_closed_bus import as_identity, refused_publish, refused_request
from tests.servers import NatsServer


@pytest.fixture
def server(tmp_path: Path) -> NatsServer:
    """A server of the test's own, with passwords of its own: partners come and go here."""
    started = NatsServer(tmp_path / "nats", keys_dir=tmp_path / "keys").start()
    yield started  # type: ignore[misc]
    started.stop()


def organisations() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"a-{tag}", f"b-{tag}"


async def feed_with_one_message(server: NatsServer, organisation: str) -> str:
    """What the partners service does on a partner's first notification: its stream and its
    consumer, and one message on it. Returns the message's id."""
    message_id = str(uuid.uuid4())
    connection = await server.connect("partners")
    try:
        js = connection.jetstream(timeout=5)
        await ensure_feed(js, organisation)
        await js.publish(
            partner_subject(organisation, "plan-shared"),
            json.dumps({"id": message_id}).encode(),
            stream=partner_stream(organisation),
            headers={"Nats-Msg-Id": message_id},
        )
    finally:
        await connection.close()
    return message_id


async def connect_partner(server: NatsServer, organisation: str, password: str) -> Client:
    identity = partner_identity_name(organisation)
    return await nats.connect(
        server.url,
        user=identity,
        password=password,
        inbox_prefix=inbox_prefix(identity),
        allow_reconnect=False,
    )


async def test_a_partner_reads_its_own_feed_and_replays_it_from_a_sequence_or_a_time(
    server: NatsServer,
) -> None:
    a, _ = organisations()
    password = server.add_partner(a)
    sent = await feed_with_one_message(server, a)
    connection = await connect_partner(server, a, password)
    try:
        js = connection.jetstream(timeout=5)
        feed = await js.pull_subscribe_bind(PARTNER_CONSUMER, stream=partner_stream(a))
        [message] = await feed.fetch(1, timeout=5)
        assert json.loads(message.data)["id"] == sent
        assert message.headers and message.headers["Nats-Msg-Id"] == sent
        await message.ack()
        with pytest.raises(nats.errors.TimeoutError):
            await feed.fetch(1, timeout=1)  # acked: not delivered again

        # Replay from a sequence: the consumer reset to it delivers from there again.
        reset = await connection.request(
            f"$JS.API.CONSUMER.RESET.{partner_stream(a)}.{PARTNER_CONSUMER}",
            json.dumps({"seq": 1}).encode(),
            timeout=5,
        )
        assert "error" not in json.loads(reset.data), reset.data
        [again] = await feed.fetch(1, timeout=5)
        assert json.loads(again.data)["id"] == sent
        await again.ack()

        # From a time: a direct get names the first message at or after it.
        hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        first = await connection.request(
            f"$JS.API.DIRECT.GET.{partner_stream(a)}",
            json.dumps({"start_time": hour_ago}).encode(),
            timeout=5,
        )
        assert first.headers and first.headers["Nats-Sequence"] == "1"
        assert [m.seq for m in await read_all(connection, partner_stream(a))] == [1]
    finally:
        await connection.close()


async def test_partner_a_cannot_read_subscribe_consume_or_publish_anything_of_partner_b(
    server: NatsServer,
) -> None:
    a, b = organisations()
    server.add_partner(a)
    server.add_partner(b)
    await feed_with_one_message(server, a)
    b_sent = await feed_with_one_message(server, b)
    b_stream = partner_stream(b)
    async with as_identity(server, partner_identity_name(a)) as partner_a:
        # Reading B's feed: fetching from its consumer, direct gets, stream and consumer info.
        for subject, body in (
            (f"$JS.API.CONSUMER.MSG.NEXT.{b_stream}.{PARTNER_CONSUMER}", b'{"batch": 1}'),
            (f"$JS.API.DIRECT.GET.{b_stream}", b'{"seq": 1}'),
            (f"$JS.API.DIRECT.GET.{b_stream}.{partner_subject(b, 'plan-shared')}", b""),
            (f"$JS.API.STREAM.MSG.GET.{b_stream}", b'{"seq": 1}'),
            (f"$JS.API.STREAM.INFO.{b_stream}", b""),
            (f"$JS.API.CONSUMER.INFO.{b_stream}.{PARTNER_CONSUMER}", b""),
            (f"$JS.API.CONSUMER.RESET.{b_stream}.{PARTNER_CONSUMER}", b'{"seq": 1}'),
            (f"$JS.ACK.{b_stream}.{PARTNER_CONSUMER}.1.1.1.0.0", b""),
        ):
            assert await refused_request(partner_a, subject, body), subject
        # Creating a consumer on B's stream, in every form the API has.
        for subject in (
            f"$JS.API.CONSUMER.CREATE.{b_stream}",
            f"$JS.API.CONSUMER.CREATE.{b_stream}.mine.{partner_subject(b, '>')}",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{b_stream}.mine",
        ):
            body = json.dumps({"stream_name": b_stream, "config": {"ack_policy": "none"}})
            assert await refused_request(partner_a, subject, body.encode()), subject
        # Subscribing to B's subjects or B's replies.
        for subject in (partner_subject(b, ">"), "kring-partner.>", f"{inbox_prefix(b)}.>"):
            await partner_a.connection.subscribe(subject)
            assert await partner_a.refused(f'subscription to "{subject}"'), subject
        # Publishing into B's feed (or its own: only the partners service writes feeds).
        for subject in (partner_subject(b, "plan-shared"), partner_subject(a, "plan-shared")):
            assert await refused_publish(partner_a, subject, b'{"forged": true}'), subject

    async with as_identity(server, "admin") as admin:
        info = await admin.js.stream_info(b_stream)
        assert info.state.messages == 1  # nothing of A's reached B's feed
        consumer = await admin.js.consumer_info(b_stream, PARTNER_CONSUMER)
        assert consumer.num_pending == 1 and consumer.delivered.stream_seq == 0
        assert consumer.config.filter_subject == partner_subject(b, ">")
    async with as_identity(server, partner_identity_name(b)) as partner_b:
        feed = await partner_b.js.pull_subscribe_bind(PARTNER_CONSUMER, stream=b_stream)
        [message] = await feed.fetch(1, timeout=5)
        assert json.loads(message.data)["id"] == b_sent  # B's feed is whole


async def test_a_partner_cannot_make_consumers_change_its_feed_or_read_kring(
    server: NatsServer,
) -> None:
    a, _ = organisations()
    server.add_partner(a)
    await feed_with_one_message(server, a)
    own = partner_stream(a)
    async with as_identity(server, partner_identity_name(a)) as partner_a:
        # No consumer of its own: a push consumer's deliver subject could point anywhere.
        for subject in (
            f"$JS.API.CONSUMER.CREATE.{own}",
            f"$JS.API.CONSUMER.CREATE.{own}.mine.{partner_subject(a, '>')}",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{own}.mine",
        ):
            body = json.dumps(
                {"stream_name": own, "config": {"deliver_subject": "kring.intake.case-erased"}}
            )
            assert await refused_request(partner_a, subject, body.encode()), subject
        for subject in (
            f"$JS.API.CONSUMER.DELETE.{own}.{PARTNER_CONSUMER}",
            f"$JS.API.STREAM.DELETE.{own}",
            f"$JS.API.STREAM.PURGE.{own}",
            f"$JS.API.STREAM.UPDATE.{own}",
            f"$JS.API.STREAM.MSG.DELETE.{own}",
            f"$JS.API.DIRECT.GET.{STREAM}",
            f"$JS.API.STREAM.INFO.{STREAM}",
            "$JS.API.INFO",
            "$JS.API.STREAM.LIST",
        ):
            assert await refused_request(partner_a, subject, b"{}"), subject
        for subject in ("kring.intake.case-erased", "kring.plans.plan-shared"):
            assert await refused_publish(partner_a, subject, b"{}"), subject
        await partner_a.connection.subscribe("kring.>")
        assert await partner_a.refused('subscription to "kring.>"')
    async with as_identity(server, "admin") as admin:
        assert (await admin.js.stream_info(own)).state.messages == 1
        assert [c.name for c in await admin.js.consumers_info(own)] == [PARTNER_CONSUMER]
        with pytest.raises(NotFoundError):
            await admin.js.stream_info(STREAM)  # nor did anything of it make a KRING


async def test_adding_rotating_and_revoking_a_partner_takes_effect_on_the_running_server(
    server: NatsServer,
) -> None:
    a, b = organisations()
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await connect_partner(server, a, "x" * 43)  # not a partner yet
    first = server.add_partner(a)  # a reload, no restart
    b_password = server.add_partner(b)
    connection = await connect_partner(server, a, first)
    b_connection = await connect_partner(server, b, b_password)
    try:
        second = server.add_partner(a, rotate=True)
        await eventually(lambda: _closed(connection), what="the old password's connection dropped")
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await connect_partner(server, a, first)
        rotated = await connect_partner(server, a, second)
        server.remove_partner(a)
        await eventually(lambda: _closed(rotated), what="the revoked partner's connection dropped")
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await connect_partner(server, a, second)
        assert b_connection.is_connected  # nobody else is touched
    finally:
        for each in (connection, b_connection):
            if not each.is_closed:
                await each.close()


async def _closed(connection: Client) -> bool:
    return connection.is_closed or not connection.is_connected
