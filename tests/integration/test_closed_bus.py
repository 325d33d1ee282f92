"""The closed bus on a real nats-server with the configuration ``kring run`` writes: who may
connect, publish, read and administer what (``shared.permissions``), tried by each identity.

Each refusal is the server's: a publish it does not allow is dropped with a "Permissions
Violation" to the client (a JetStream request then never gets its answer), a subscription it
does not allow is refused the same way. Every test also checks that what was refused did not
happen (nothing on the stream, the consumer unchanged), and that the identity that may do it can.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, DeliverPolicy

from kring.local import nats_server_binary
from services.coordination.bootstrap import build as build_coordination
from services.coordination.settings import CoordinationSettings
from shared.bus import ensure_streams
from shared.envelope import encode
from shared.events import CaseErased
from shared.permissions import claim_reply_prefix, durable_name, inbox_prefix, names
from shared.subjects import DLQ_STREAM, STREAM
from tests.factories import bus_headers, coordinator_assigned, envelope, request_received
from tests.harness import eventually, running, stream_messages
from tests.servers import NatsServer

NOT_INTAKE = [name for name in names() if name != "intake"]


class Watched:
    """A connection as one identity that keeps what the server refused it."""

    def __init__(self, connection: Client, refusals: list[str]) -> None:
        self.connection = connection
        self.refusals = refusals

    @property
    def js(self) -> Any:
        return self.connection.jetstream(timeout=1.0)

    async def refused(self, needle: str) -> bool:
        """Whether the server refused something naming ``needle`` (it says so asynchronously)."""
        try:
            await eventually(
                lambda: _any(self.refusals, needle), timeout=3, what=f"a refusal of {needle}"
            )
        except AssertionError:
            return False
        return True


async def _any(refusals: list[str], needle: str) -> bool:
    return any(needle.lower() in refusal.lower() for refusal in refusals)


@asynccontextmanager
async def as_identity(server: NatsServer, identity: str) -> AsyncIterator[Watched]:
    refusals: list[str] = []

    async def on_error(error: Exception) -> None:
        refusals.append(str(error))

    connection = await server.connect(identity, error_cb=on_error, allow_reconnect=False)
    try:
        yield Watched(connection, refusals)
    finally:
        await connection.close()


async def refused_publish(who: Watched, subject: str, payload: bytes, **headers: str) -> bool:
    """A publish (a JetStream publish or API request: both ask for an answer) the server drops:
    a violation named, and no answer ever."""
    answers: list[Any] = []

    async def keep(message: Any) -> None:
        answers.append(message)

    inbox = who.connection.new_inbox()
    subscription = await who.connection.subscribe(inbox, cb=keep)
    await who.connection.publish(subject, payload, reply=inbox, headers=headers or None)
    refused = await who.refused(f'publish to "{subject}"')
    await who.connection.flush()  # an answer, had there been one, would be here by now
    await subscription.unsubscribe()
    return refused and answers == []


async def refused_request(who: Watched, subject: str, payload: bytes = b"") -> bool:
    """A JetStream API request the server drops before JetStream sees it."""
    return await refused_publish(who, subject, payload)


def case_erased(case_id: uuid.UUID) -> CaseErased:
    return CaseErased(
        case_id=case_id, model="family", erased_at=datetime(2026, 3, 2, tzinfo=UTC), reason="other"
    )


@pytest.fixture
async def streams(nats_server: NatsServer) -> None:
    """The streams, as the first service to start makes them."""
    async with as_identity(nats_server, "intake") as intake:
        await ensure_streams(intake.connection.jetstream())


async def on_stream(server: NatsServer, case_id: uuid.UUID) -> list[Any]:
    return [m for m in await stream_messages(server) if str(case_id).encode() in m.data]


def test_the_configuration_kring_run_writes_is_valid_for_nats_server(
    nats_server: NatsServer,
) -> None:
    checked = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(nats_server.store_dir / "nats.conf")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    text = (nats_server.store_dir / "nats.conf").read_text()
    assert all(password not in text for password in nats_server.passwords.values())
    assert (nats_server.store_dir / "nats.conf").stat().st_mode & 0o777 == 0o600


async def test_an_anonymous_connection_is_refused(nats_server: NatsServer) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(nats_server.url, allow_reconnect=False, max_reconnect_attempts=1)


@pytest.mark.parametrize("password", ["wrong", "analyst"], ids=["wrong", "another's"])
async def test_a_wrong_password_is_refused(nats_server: NatsServer, password: str) -> None:
    given = nats_server.password(password) if password in names() else password
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            nats_server.url,
            user="intake",
            password=given,
            allow_reconnect=False,
            max_reconnect_attempts=1,
        )


async def test_intakes_identity_cannot_publish_on_coordinations_subjects(
    nats_server: NatsServer, streams: None
) -> None:
    event = coordinator_assigned(uuid.uuid4())
    async with as_identity(nats_server, "intake") as intake:
        assert await refused_publish(
            intake, event.subject(), envelope(event, 1), **bus_headers("coordination", 1)
        )
    async with as_identity(nats_server, "coordination") as coordination:
        ack = await coordination.js.publish(
            event.subject(), envelope(event, 2), headers=bus_headers("coordination", 2)
        )
    assert [m.seq for m in await on_stream(nats_server, event.case_id)] == [ack.seq]


@pytest.mark.parametrize("identity", NOT_INTAKE)
async def test_a_forged_case_erased_from_any_identity_but_intakes_is_refused_by_the_server(
    nats_server: NatsServer, streams: None, identity: str
) -> None:
    event = case_erased(uuid.uuid4())
    forged = encode(event, origin="intake", position=7, time=event.erased_at)
    async with as_identity(nats_server, identity) as who:
        assert await refused_publish(who, event.subject(), forged, **bus_headers("intake", 7))
    assert await on_stream(nats_server, event.case_id) == []


async def test_intake_itself_may_publish_case_erased(
    nats_server: NatsServer, streams: None
) -> None:
    event = case_erased(uuid.uuid4())
    async with as_identity(nats_server, "intake") as intake:
        await intake.js.publish(
            event.subject(),
            encode(event, origin="intake", position=7, time=event.erased_at),
            headers=bus_headers("intake", 7),
        )
    assert len(await on_stream(nats_server, event.case_id)) == 1


async def test_the_analyst_reads_kring_and_cannot_publish_or_touch_the_dead_letters(
    nats_server: NatsServer, streams: None
) -> None:
    event = request_received()
    async with as_identity(nats_server, "intake") as intake:
        await intake.js.publish(
            event.subject(), envelope(event, 1), headers=bus_headers("intake", 1)
        )
    async with as_identity(nats_server, "analyst") as analyst:
        found = await analyst.js.get_last_msg(STREAM, event.subject())
        assert str(event.case_id).encode() in found.data
        assert await refused_publish(analyst, event.subject(), envelope(event, 2))
        assert await refused_publish(analyst, "kring-dlq.coordination-from-intake", b"{}")
        for request in (
            f"$JS.API.STREAM.INFO.{DLQ_STREAM}",
            f"$JS.API.STREAM.MSG.GET.{DLQ_STREAM}",
            f"$JS.API.DIRECT.GET.{DLQ_STREAM}",
            f"$JS.API.STREAM.PURGE.{DLQ_STREAM}",
            f"$JS.API.STREAM.MSG.DELETE.{STREAM}",
            f"$JS.API.CONSUMER.CREATE.{STREAM}",
        ):
            assert await refused_request(analyst, request, b'{"seq": 1}'), request


@pytest.mark.parametrize("identity", [n for n in names() if n != "admin"])
async def test_only_admin_may_purge_update_or_delete_the_streams(
    own_nats: NatsServer, identity: str
) -> None:
    async with as_identity(own_nats, "intake") as intake:
        await ensure_streams(intake.connection.jetstream())
        event = request_received()
        await intake.js.publish(
            event.subject(), envelope(event, 1), headers=bus_headers("intake", 1)
        )
    async with as_identity(own_nats, identity) as who:
        for stream in (STREAM, DLQ_STREAM):
            for action in ("PURGE", "DELETE", "UPDATE"):
                subject = f"$JS.API.STREAM.{action}.{stream}"
                assert await refused_request(who, subject, b"{}"), subject
    async with as_identity(own_nats, "admin") as admin:
        assert (await admin.js.stream_info(STREAM)).state.messages == 1
        assert await admin.js.purge_stream(STREAM)
        assert (await admin.js.stream_info(STREAM)).state.messages == 0
        assert await admin.js.delete_stream(DLQ_STREAM)


@pytest.mark.parametrize("wanted", ["_INBOX.intake.>", "_INBOX.>", ">"])
async def test_one_identity_cannot_read_anothers_replies(
    nats_server: NatsServer, streams: None, wanted: str
) -> None:
    async with as_identity(nats_server, "coordination") as snoop:
        overheard: list[str] = []

        async def keep(message: Any) -> None:
            overheard.append(message.subject)

        await snoop.connection.subscribe(wanted, cb=keep)
        assert await snoop.refused(f'Subscription to "{wanted}"')
        async with as_identity(nats_server, "intake") as intake:
            # Intake's requests are answered (under its own inbox), and nobody else hears them.
            await intake.js.stream_info(STREAM)
            reply = await intake.connection.request(f"$JS.API.STREAM.INFO.{STREAM}", b"")
            assert reply.subject.startswith(inbox_prefix("intake") + ".")
        await snoop.connection.flush()
        assert overheard == []


@asynccontextmanager
async def coordination_consumers(server: NatsServer, data: Path) -> AsyncIterator[None]:
    """Coordination's durable consumers, made by coordination itself, then left unbound (as
    while the service is stopped)."""
    settings = CoordinationSettings(**server.settings("coordination"), data_dir=data)
    async with running(build_coordination(settings)) as coordination:
        await coordination.service.bus.wait_started()
    yield


async def test_no_reader_can_take_over_a_stopped_services_durable_consumer(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    """On the old open server a reader rewrote a stopped service's durable (see the test
    below); here none may ask for it, in any form, and the consumer stays as it was."""
    name = durable_name("coordination", "intake")
    async with coordination_consumers(own_nats, tmp_path):
        pass
    async with as_identity(own_nats, "admin") as admin:
        before = (await admin.js.consumer_info(STREAM, name)).config
    hijack = json.dumps(
        {
            "stream_name": STREAM,
            "config": before.as_dict()
            | {"durable_name": None, "deliver_subject": "_INBOX.analyst.stolen"},
        }
    ).encode()
    for identity in ("analyst", "operator", "plans"):
        async with as_identity(own_nats, identity) as reader:
            for subject in (
                f"$JS.API.CONSUMER.CREATE.{STREAM}",
                f"$JS.API.CONSUMER.CREATE.{STREAM}.{name}.kring.intake.>",
                f"$JS.API.CONSUMER.DURABLE.CREATE.{STREAM}.{name}",
                f"$JS.API.CONSUMER.DELETE.{STREAM}.{name}",
            ):
                assert await refused_request(reader, subject, hijack), (identity, subject)
    async with as_identity(own_nats, "admin") as admin:
        after = (await admin.js.consumer_info(STREAM, name)).config
    assert after.deliver_subject == before.deliver_subject
    assert after.deliver_subject is not None
    assert after.deliver_subject.startswith(inbox_prefix("coordination") + ".")


async def test_on_the_old_open_server_a_reader_could_rewrite_a_stopped_services_durable(
    tmp_path: Path,
) -> None:
    """Why readers may create no consumer: ``$JS.API.CONSUMER.CREATE.<stream>`` (what an
    ordered consumer sends) takes a consumer name in its body and updates a consumer of that
    name nobody is bound to, deliveries and filter included."""
    server = NatsServer(tmp_path / "open", closed=False).start()
    try:
        name = durable_name("coordination", "intake")
        async with coordination_consumers(server, tmp_path):
            pass
        connection = await nats.connect(server.url)
        js = connection.jetstream()
        before = (await js.consumer_info(STREAM, name)).config
        config = before.as_dict() | {
            "durable_name": None,
            "deliver_subject": "_INBOX.stolen",
            "filter_subject": "kring.>",
        }
        answer = await connection.request(
            f"$JS.API.CONSUMER.CREATE.{STREAM}",
            json.dumps({"stream_name": STREAM, "config": config}).encode(),
        )
        assert "error" not in json.loads(answer.data)
        after = (await js.consumer_info(STREAM, name)).config
        assert (after.deliver_subject, after.filter_subject) == ("_INBOX.stolen", "kring.>")
        await connection.close()
    finally:
        server.stop()


async def test_a_service_may_make_only_its_own_consumers_with_their_own_filters(
    nats_server: NatsServer, streams: None
) -> None:
    async with as_identity(nats_server, "coordination") as coordination:
        mine = durable_name("coordination", "intake")
        for subject in (
            f"$JS.API.CONSUMER.CREATE.{STREAM}.{durable_name('plans', 'intake')}.kring.intake.>",
            f"$JS.API.CONSUMER.CREATE.{STREAM}.{mine}.kring.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{STREAM}.{mine}",
            f"$JS.ACK.{STREAM}.{durable_name('plans', 'intake')}.1.1.1.0.0",
        ):
            assert await refused_request(coordination, subject, b"{}"), subject
        # Under its own subject the server itself refuses a body asking for another filter.
        wider = ConsumerConfig(
            name=mine,
            durable_name=mine,
            filter_subject="kring.>",
            deliver_subject=coordination.connection.new_inbox(),
            deliver_policy=DeliverPolicy.ALL,
        )
        answer = await coordination.connection.request(
            f"$JS.API.CONSUMER.CREATE.{STREAM}.{mine}.kring.intake.>",
            json.dumps({"stream_name": STREAM, "config": wider.as_dict()}).encode(),
        )
        assert json.loads(answer.data)["error"]["err_code"] == 10131


async def test_a_durable_made_before_identities_is_moved_under_its_services_inbox(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    """A data folder from before: coordination's durable delivers to a plain ``_INBOX.…``,
    where coordination may not subscribe any more. Coordination moves it, keeping its place."""
    name = durable_name("coordination", "intake")
    async with as_identity(own_nats, "admin") as admin:
        await ensure_streams(admin.connection.jetstream())
        legacy = ConsumerConfig(
            durable_name=name,
            deliver_subject="_INBOX.made-by-an-open-server",
            deliver_group=name,
            filter_subject="kring.intake.>",
            ack_policy="explicit",  # type: ignore[arg-type]
            deliver_policy=DeliverPolicy.ALL,
        )
        await admin.js.add_consumer(STREAM, config=legacy)
    event = request_received()
    async with as_identity(own_nats, "intake") as intake:
        await intake.js.publish(
            event.subject(), envelope(event, 1), headers=bus_headers("intake", 1)
        )
    settings = CoordinationSettings(**own_nats.settings("coordination"), data_dir=tmp_path)
    async with running(build_coordination(settings)) as coordination:

        async def applied() -> bool:
            found = await coordination.http.get(f"/cases/{event.case_id}")
            return found.status_code == 200

        await eventually(applied, what="the event applied through the moved consumer")
    async with as_identity(own_nats, "admin") as admin:
        moved = (await admin.js.consumer_info(STREAM, name)).config.deliver_subject
    assert moved is not None and moved.startswith(inbox_prefix("coordination") + ".")


def test_a_service_without_its_nats_identity_stops_at_start_with_one_line(
    tmp_path: Path,
) -> None:
    started = subprocess.run(
        [sys.executable, "-m", "services.intake.main"],
        env={
            "PATH": "/usr/bin:/bin",
            "KRING_DATA_DIR": str(tmp_path),
            "KRING_INTAKE_PORT": "0",
            "KRING_OIDC_ISSUER": "http://127.0.0.1:1",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1, started.stderr
    assert "KRING_NATS_USER is not set" in lines[0]


async def test_a_service_whose_password_is_refused_is_not_ready_and_says_why(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = CoordinationSettings(
        **nats_server.settings("coordination") | {"nats_password": "not-the-password"},
        data_dir=tmp_path,
    )
    async with running(build_coordination(settings)) as coordination:

        async def refused() -> bool:
            ready = await coordination.http.get("/health/ready")
            return ready.status_code == 503 and "refused user 'coordination'" in ready.text

        await eventually(refused, what="readiness naming the refusal")


def kring_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kring.cli", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_finds_the_operators_password_in_the_data_folder_or_says_where_it_looked(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    from kring.natsconf import keys_dir

    url = {"KRING_NATS_URL": nats_server.url}
    nowhere = kring_cli(url | {"KRING_DATA_DIR": str(tmp_path)}, "dlq", "list")
    assert nowhere.returncode == 2
    assert "no NATS credentials for operator: set KRING_NATS_USER" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr

    folder = keys_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "operator.password").write_text(nats_server.password("operator"))
    found = kring_cli(url | {"KRING_DATA_DIR": str(tmp_path)}, "dlq", "list", "--json")
    assert found.returncode == 0, found.stderr

    wrong = kring_cli(
        url | {"KRING_NATS_USER": "operator", "KRING_NATS_PASSWORD": "x" * 40}, "dlq", "list"
    )
    assert wrong.returncode == 1
    assert "refused the credentials" in wrong.stderr and "Traceback" not in wrong.stderr


def test_the_cli_says_what_nats_refused_an_identity(nats_server: NatsServer, streams: None) -> None:
    """The analyst's password for the operator's command: refused by the server, said in one
    line."""
    as_analyst = kring_cli(
        {"KRING_NATS_URL": nats_server.url, **nats_server.env("analyst")}, "dlq", "list"
    )
    assert as_analyst.returncode == 1
    assert "NATS refused: user 'analyst'" in as_analyst.stderr
    assert "kring_dlq" in as_analyst.stderr.lower()
    assert len(as_analyst.stderr.strip().splitlines()) == 1


async def test_intake_answers_plans_claims_into_their_own_prefix_and_nowhere_else_of_plans(
    nats_server: NatsServer, streams: None
) -> None:
    """Intake may answer plans' claim checks at any time (after a reconnect too, where a
    response to a request received before would be refused), but only under plans' claim-reply
    prefix: plans' other inbox subjects (its JetStream replies, its consumers' deliveries) stay
    plans' alone."""
    async with as_identity(nats_server, "plans") as plans:
        heard: list[str] = []

        async def keep(message: Any) -> None:
            heard.append(message.subject)

        await plans.connection.subscribe(f"{inbox_prefix('plans')}.>", cb=keep)
        await plans.connection.flush()
        async with as_identity(nats_server, "intake") as intake:
            answer = f"{claim_reply_prefix('plans')}.{uuid.uuid4().hex}"
            await intake.connection.publish(answer, b"{}")  # no request received first
            delivery = f"{inbox_prefix('plans')}.{uuid.uuid4().hex}"
            await intake.connection.publish(delivery, b"{}")
            assert await intake.refused(f'publish to "{delivery}"')
            assert not await intake.refused(f'publish to "{answer}"')

        async def answered() -> bool:
            return answer in heard

        await eventually(answered, what="the answer in plans' claim-reply prefix")
        assert heard == [answer]
