"""A partner onboarded as ``docs/partners.md`` says, against ``kring run``, and the contract: the
operator's
``kring partners add`` makes its credentials file; the page's own consumer (nats-py and the
cloudevents 2.x SDK) and its webhook receiver (``standardwebhooks``), run as they are printed,
receive the family's plan; the page's fetch gets the copy with the partner's OAuth client from
the development issuer, and the fetch is in plans' access log; a replay as the page shows it
sends the feed again; rotating and revoking take effect on the running nats-server; an erasure
reaches both as a revocation and the copy answers 410. Last, every message the services' AsyncAPI
documents say they send is compared with what really went over the stream and to a webhook."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.errors
import pytest

from kring import scenarios, workflow
from kring.client import Who
from shared.events import ConferenceModel
from shared.permissions import inbox_prefix
from shared.stream_read import read_all
from shared.subjects import STREAM
from tests.contract.documents import READ_HEADERS, check, operated
from tests.e2e.conftest import System
from tests.harness import eventually
from tests.servers import free_port

DOC = Path(__file__).resolve().parents[2] / "docs" / "partners.md"
OPERATOR = Who("partners-operator", ("operator",))
PARTNER = "jeugdzorg-utrecht"  # the family story's organisation (kring.scenarios)
OTHER = "gemeente-utrecht"


def snippet(name: str) -> str:
    """The code block the page marks ``<!-- snippet: name -->``, exactly as printed."""
    found = re.search(rf"<!-- snippet: {name} -->\n```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert found, f"docs/partners.md has no snippet {name!r}"
    return found.group(1)


class Output:
    """A snippet running as its own process; its lines as they come."""

    def __init__(self, process: subprocess.Popen[str], path: Path) -> None:
        self.process, self.path = process, path

    def lines(self) -> list[str]:
        return self.path.read_text().splitlines()

    async def has(self, *parts: str) -> bool:
        if any(all(p in line for p in parts) for line in self.lines()):
            return True
        # A snippet that stopped will print nothing more: say so, with what it printed.
        assert self.process.poll() is None, "\n".join(self.lines()[-20:])
        return False


@contextmanager
def running_snippet(name: str, folder: Path, **env: str) -> Iterator[Output]:
    script = folder / f"{name}.py"
    script.write_text(snippet(name))
    out = folder / f"{name}.out"
    with out.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, str(script)],
            env=os.environ | env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        yield Output(process, out)
    finally:
        process.kill()
        process.wait(timeout=10)


def kring(system: System, *args: str, who: Who = OPERATOR) -> subprocess.CompletedProcess[str]:
    result = system.kring(*args, who=who)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


async def plans_heard_of(system: System, organisation: str) -> None:
    """Plans has applied everything the partners service published (the registration)."""
    connection = await system.connect("admin")
    try:
        js = connection.jetstream()

        async def caught_up() -> bool:
            info = await js.consumer_info(STREAM, "plans-from-partners")
            return (
                info.num_pending == 0
                and info.num_ack_pending == 0
                and info.delivered.stream_seq > 0
            )

        await eventually(caught_up, timeout=30, what=f"plans heard of {organisation}")
    finally:
        await connection.close()


async def connect(system: System, credentials: dict[str, Any]) -> Any:
    c = credentials["nats"]
    return await nats.connect(
        c["url"],
        user=c["user"],
        password=c["password"],
        inbox_prefix=c["inbox_prefix"],
        allow_reconnect=False,
    )


async def test_a_partner_onboarded_from_the_docs_alone_receives_and_fetches_its_plan(
    system: System, tmp_path: Path
) -> None:
    receiver_port = free_port()
    webhook = f"http://127.0.0.1:{receiver_port}/kring"
    added = kring(
        system,
        "partners",
        "add",
        PARTNER,
        "--name",
        "Jeugdzorg Utrecht",
        "--webhook",
        webhook,
        "--out",
        str(tmp_path),
    )
    assert "reloaded" in added.stdout
    path = tmp_path / f"partner-{PARTNER}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    credentials = json.loads(path.read_text())
    assert credentials["webhook"]["secret"].startswith("whsec_")
    assert credentials["nats"]["inbox_prefix"] == inbox_prefix(f"partner-{PARTNER}")
    kring(system, "partners", "add", OTHER, "--name", "Gemeente Utrecht", "--out", str(tmp_path))
    listed = kring(system, "partners", "list").stdout
    assert PARTNER in listed and webhook in listed and OTHER in listed and "NATS only" in listed
    await plans_heard_of(system, OTHER)

    env = {"KRING_PARTNER_CREDENTIALS": str(path)}
    secret = credentials["webhook"]["secret"]
    with (
        running_snippet("consumer", tmp_path, **env) as consumer,
        running_snippet(
            "receiver",
            tmp_path,
            KRING_WEBHOOK_SECRET=secret,
            HOST="127.0.0.1",
            PORT=str(receiver_port),
        ) as receiver,
    ):
        run, region = await _run_family_case(system)
        case_id = run.case_id
        shared = "nl.kring.partner.plan-shared.v1"
        await eventually(
            lambda: consumer.has(shared, case_id), timeout=30, what="the consumer's plan-shared"
        )
        await eventually(
            lambda: receiver.has(shared, case_id), timeout=30, what="the receiver's plan-shared"
        )
        [line] = [x for x in consumer.lines() if shared in x]
        data = json.loads(line.split(" ", 2)[2])
        assert data["plan_version"] == 1 and data["case_id"] == case_id
        # In the family's story no agreement names the youth worker (test_partner_flow has
        # agreements an organisation takes part in).
        assert data["agreements"] == [] and data["next_meeting_on"]

        # The copy, fetched as the page shows, with the partner's own OAuth client.
        namespace: dict[str, Any] = {}
        exec(snippet("copy"), namespace)
        pdf = namespace["fetch_copy"](credentials, data["copy"]["pdf"])
        assert pdf.content.startswith(b"%PDF")
        copy = namespace["fetch_copy"](credentials, data["copy"]["json"]).json()
        assert copy["case_id"] == case_id and copy["your_agreements"] == []
        story = scenarios.SCENARIOS[ConferenceModel.FAMILY]
        assert len(copy["agreements"]) == len(story.agreements)
        manager = workflow.manager(region)
        reads = json.loads(kring(system, "access-log", case_id, "--json", who=manager).stdout)
        assert {(r["subject"], r["role"], r["what"]) for r in reads if r["role"] == "partner"} == {
            (f"partner-{PARTNER}", "partner", "plan.copy.pdf.v1"),
            (f"partner-{PARTNER}", "partner", "plan.copy.json.v1"),
        }
        sent = json.loads(kring(system, "partners", "deliveries", PARTNER, "--json").stdout)
        assert [(d["case_id"], d["webhook_status"]) for d in sent] == [(case_id, "sent")]

        # The other partner was shared nothing: its feed, there since its registration, is empty.
        other = json.loads((tmp_path / f"partner-{OTHER}.json").read_text())
        connection = await connect(system, other)
        try:
            js = connection.jetstream(timeout=3)
            assert (await js.stream_info(other["nats"]["stream"])).state.messages == 0
        finally:
            await connection.close()

        # Erasure: a revocation to the consumer and the receiver, the copy gone (410).
        erased = system.kring("erase", case_id, "--reason", "requested_by_person", who=manager)
        assert erased.returncode == 0, erased.stdout + erased.stderr
        revoked = "nl.kring.partner.plan-revoked.v1"
        await eventually(lambda: consumer.has(revoked, case_id), timeout=30, what="revoked (NATS)")
        await eventually(lambda: receiver.has(revoked, case_id), timeout=30, what="revoked (hook)")
        with pytest.raises(httpx.HTTPStatusError) as gone:
            namespace["fetch_copy"](credentials, data["copy"]["json"])
        assert gone.value.response.status_code == 410

    # A replay, as the page shows it: the whole feed from sequence 1 again.
    await _replayed_from_the_start(credentials, case_id)


async def test_rotating_and_revoking_a_partner_take_effect_on_the_running_server(
    system: System, tmp_path: Path
) -> None:
    organisation = f"wijkteam-{uuid.uuid4().hex[:6]}"
    kring(system, "partners", "add", organisation, "--name", "Wijkteam", "--out", str(tmp_path))
    path = tmp_path / f"partner-{organisation}.json"
    first = json.loads(path.read_text())
    connection = await connect(system, first)
    assert connection.is_connected
    await connection.close()
    kring(system, "partners", "rotate", organisation, "--out", str(tmp_path))
    second = json.loads(path.read_text())
    assert second["nats"]["password"] != first["nats"]["password"]
    assert second["oauth"]["client_secret"] != first["oauth"]["client_secret"]
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await connect(system, first)
    await (await connect(system, second)).close()
    token = httpx.post(
        second["oauth"]["token_url"],
        data={"grant_type": "client_credentials"},
        auth=(second["oauth"]["client_id"], second["oauth"]["client_secret"]),
    )
    assert token.status_code == 200
    old = httpx.post(
        first["oauth"]["token_url"],
        data={"grant_type": "client_credentials"},
        auth=(first["oauth"]["client_id"], first["oauth"]["client_secret"]),
    )
    assert old.status_code == 401

    kring(system, "partners", "revoke", organisation)
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await connect(system, second)
    refused = system.kring("partners", "rotate", organisation, who=OPERATOR)
    assert refused.returncode == 2 and "revoked" in refused.stderr
    unknown = system.kring("partners", "add", "Not An Id", "--name", "x", who=OPERATOR)
    assert unknown.returncode == 2 and "no organisation id" in unknown.stderr
    assert "Traceback" not in unknown.stderr + refused.stderr


async def _run_family_case(system: System) -> tuple[workflow.CaseRun, str]:
    region = f"PARTNERS-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient() as http:
        session = workflow.Session(http, system.tokens, partners=frozenset({PARTNER}))
        await workflow.join_pool(session, urls=system.urls, region=region)
        run = await workflow.run_case(
            session,
            ConferenceModel.FAMILY,
            urls=system.urls,
            region=region,
            key=f"partners-{uuid.uuid4()}",
            patience=90,
        )
    return run, region


async def _replayed_from_the_start(credentials: dict[str, Any], case_id: str) -> None:
    namespace: dict[str, Any] = {"json": json}
    exec(snippet("replay"), namespace)
    c = credentials["nats"]
    connection = await nats.connect(
        c["url"], user=c["user"], password=c["password"], inbox_prefix=c["inbox_prefix"]
    )
    try:
        await namespace["replay_from"](connection, c, sequence=1)
        feed = await connection.jetstream().pull_subscribe_bind(c["consumer"], stream=c["stream"])
        again = await feed.fetch(2, timeout=10)
        assert [m.metadata.sequence.stream for m in again] == [1, 2]
        assert [json.loads(m.data)["type"] for m in again] == [
            "nl.kring.partner.plan-shared.v1",
            "nl.kring.partner.plan-revoked.v1",
        ]
        assert {json.loads(m.data)["subject"] for m in again} == {case_id}
        for message in again:
            await message.ack()
    finally:
        await connection.close()


async def test_every_documented_message_is_what_the_system_really_publishes(
    system: System, tmp_path: Path
) -> None:
    """Every message each service's AsyncAPI document says it sends went over the real stream
    (or to a real webhook) in this run, and every message that did validates against its
    documented payload and headers: nothing sent that is not documented, nothing documented
    that is not sent."""
    documents = {
        name: httpx.get(f"{url}/asyncapi.json", timeout=10).json()
        for name, url in system.urls.items()
    }
    await _every_event_of_the_contract(system, tmp_path)

    sent: dict[str, tuple[str, str]] = {}  # type, transport -> (service, message key)
    for service, document in documents.items():
        for key in operated(document, "send"):
            message = document["components"]["messages"][key]
            sent[f"{message['name']}|{message['contentType']}"] = (service, key)

    seen: set[str] = set()

    def compare(payload: bytes, headers: dict[str, str], content_type: str) -> None:
        body = json.loads(payload)
        name = f"{body['type']}|{content_type}"
        assert name in sent, f"{body['type']} is sent but not documented"
        service, key = sent[name]
        document = documents[service]
        message = document["components"]["messages"][key]
        check(document, message["payload"], body)
        check(document, message["headers"], headers)
        seen.add(name)

    connection = await system.connect("admin")
    try:
        for stored in await read_all(connection, STREAM):
            headers = {k: v for k, v in stored.headers.items() if k not in READ_HEADERS}
            compare(stored.data, headers, "application/json")
        for stream in ("KRING_PARTNER_jeugdzorg-utrecht",):
            for stored in await read_all(connection, stream):
                headers = {k: v for k, v in stored.headers.items() if k not in READ_HEADERS}
                compare(stored.data, headers, "application/json")
    finally:
        await connection.close()
    for headers, body, _ in RECEIVED:
        webhook = {k: v for k, v in headers.items() if k.startswith("webhook-")}
        compare(body, webhook | {"content-type": headers["content-type"]}, headers["content-type"])
    assert set(sent) - seen == set(), "documented, never sent in this run"


#: What the contract test's webhook receiver was sent.
RECEIVED: list[tuple[dict[str, str], bytes, float]] = []


async def _every_event_of_the_contract(system: System, tmp_path: Path) -> None:
    """Drive the system through every event type there is: a case through its follow-up,
    shared with a partner (by webhook too), then a consent and the sharing withdrawn; a case
    ended without a conference, its request withdrawn and the case erased; a partner registered
    and revoked."""
    from tests.servers import WebhookReceiver

    listed = json.loads(kring(system, "partners", "list", "--json").stdout)
    if PARTNER not in {p["organisation"] for p in listed if p["active"]}:
        kring(
            system,
            "partners",
            "add",
            PARTNER,
            "--name",
            "Jeugdzorg Utrecht",
            "--out",
            str(tmp_path),
        )
    throwaway = f"contract-{uuid.uuid4().hex[:6]}"
    kring(system, "partners", "add", throwaway, "--name", "Contract", "--out", str(tmp_path))
    kring(system, "partners", "revoke", throwaway)
    operator = system.headers(OPERATOR)
    with WebhookReceiver() as receiver:
        hook = httpx.put(
            f"{system.urls['partners']}/partners/{PARTNER}/webhook",
            json={"url": receiver.url},
            headers=operator,
            timeout=10,
        )
        assert hook.status_code == 200, hook.text
        await plans_heard_of(system, PARTNER)
        region = f"CONTRACT-{uuid.uuid4().hex[:6]}"
        async with httpx.AsyncClient() as http:
            session = workflow.Session(http, system.tokens, partners=frozenset({PARTNER}))
            await workflow.join_pool(session, urls=system.urls, region=region)
            run = await workflow.run_case(
                session,
                ConferenceModel.FAMILY,
                urls=system.urls,
                region=region,
                key=f"contract-{uuid.uuid4()}",
                patience=90,
                through_follow_up=True,
            )
            manager = workflow.manager(region)
            coordination = f"{system.urls['coordination']}/cases/{run.case_id}"
            case = await workflow.read(session, coordination, manager)
            coordinator = workflow.coordinator(case["coordinator_ids"][0])
            participant = next(iter(run.participant_ids.values()))
            await workflow.call(
                session,
                "POST",
                f"{coordination}/participants/{participant}/consent/withdraw",
                coordinator,
                {"what": "share_details"},
            )
            await workflow.call(
                session,
                "POST",
                f"{system.urls['plans']}/cases/{run.case_id}/plan/sharing/withdraw",
                coordinator,
                {"organisation": PARTNER},
            )
            revoked = "nl.kring.partner.plan-revoked.v1"
            # Both versions of the family's plan were shared before the withdrawal.
            case_bytes = str(run.case_id).encode()

            async def revocation_received() -> bool:
                return any(
                    revoked.encode() in body and case_bytes in body
                    for _, body, _ in receiver.requests
                )

            await eventually(revocation_received, timeout=30, what="the revocation")
            RECEIVED.extend(receiver.requests)

            story = scenarios.SCENARIOS[ConferenceModel.FAMILY]
            intake = system.urls["intake"]

            async def submit() -> str:
                submitted = await workflow.call(
                    session,
                    "POST",
                    f"{intake}/cases",
                    workflow.REQUESTER,
                    scenarios.request_body(story, region),
                    key=f"contract-{uuid.uuid4()}",
                )
                return str(submitted["case_id"])

            ended = await submit()
            await workflow.call(
                session,
                "POST",
                f"{intake}/cases/{ended}/clarify",
                manager,
                scenarios.clarification_body(story),
            )
            await workflow.accept(session, f"{intake}/cases/{ended}", manager)
            assigned = await workflow.until(
                session,
                f"{system.urls['coordination']}/cases/{ended}",
                manager,
                lambda c: bool(c.get("coordinator_ids")),
                60,
            )
            await workflow.call(
                session,
                "POST",
                f"{system.urls['coordination']}/cases/{ended}/end",
                workflow.coordinator(assigned["coordinator_ids"][0]),
                {"ending": "stopped", "reason": "network_not_willing"},
            )
            await workflow.call(
                session,
                "POST",
                f"{intake}/cases/{ended}/withdraw",
                manager,
                {"reason": "the family chose otherwise"},
            )
            # And one withdrawn before it was accepted (coordination never hears of it).
            early = await submit()
            await workflow.call(
                session,
                "POST",
                f"{intake}/cases/{early}/withdraw",
                manager,
                {"reason": "the family found their own way"},
            )
        erased = system.kring("erase", ended, "--reason", "other", who=manager)
        assert erased.returncode == 0, erased.stdout + erased.stderr


async def _received(receiver: Any, count: int) -> bool:
    return len(receiver.requests) >= count
