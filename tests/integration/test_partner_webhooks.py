"""Webhooks to a real local HTTP receiver, sent by the partners service's own worker, signed as
Standard Webhooks say and checked with the ``standardwebhooks`` library: retried with back-off
under one id until the receiver takes it, order per case, 410 disabling the endpoint, 429
slowing it down, a secret's rotation signing twice, a resend and a replay by hand, giving up
after the window; a tampered body fails verification; a private target is refused unless a
setting allows it, at registration and at connection."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.partners.bootstrap import build as build_partners
from services.partners.settings import PartnersSettings
from services.partners.ssrf import TargetRefusedError, TargetRules, guarded_client
from services.partners.webhooks import WebhookWorker
from shared import fence
from shared.events import AgreementRef, PlanShared, SharedWith
from tests.factories import delivered
from tests.harness import Running, eventually, running
from tests.servers import NatsServer, WebhookReceiver
from tests.tokens import bearer

OPERATOR = bearer("ops", ["operator"])
_positions = itertools.count(1)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as started:
        yield started


@asynccontextmanager
async def partners_service(
    server: NatsServer, data: Path, **settings: Any
) -> AsyncIterator[Running]:
    chosen: dict[str, Any] = {
        "webhook_allow_private": True,
        "webhook_allow_http": True,
        "webhook_tick_seconds": 0.02,
        "webhook_first_retry_seconds": 0.1,
    } | settings
    config = PartnersSettings(**server.settings("partners"), data_dir=data, **chosen)
    async with running(build_partners(config)) as service:
        yield service


async def register(service: Running, url: str | None) -> tuple[str, str | None]:
    organisation = f"org-{uuid.uuid4().hex[:8]}"
    body = {"organisation": organisation, "name": "Jeugdzorg", "webhook_url": url}
    answer = await service.http.post("/partners", json=body, headers=OPERATOR)
    assert answer.status_code == 201, answer.text
    return organisation, answer.json()["webhook_secret"]


def share(service: Running, organisation: str, case_id: uuid.UUID | None = None) -> uuid.UUID:
    """What plans' PlanShared makes the partners service do: a notification for the partner."""
    case_id = case_id or uuid.uuid4()
    event = PlanShared(
        case_id=case_id,
        model="family",
        plan_version=1,
        shared_at=datetime.now(UTC),
        organisations=[
            SharedWith(
                organisation=organisation,
                agreements=[AgreementRef(agreement_id="a1", on=date(2026, 5, 4))],
            )
        ],
        next_meeting_on=date(2026, 9, 29),
    )
    assert service.app.process(delivered(event, next(_positions), origin="plans"))
    return case_id


async def deliveries(service: Running, organisation: str) -> list[dict[str, Any]]:
    answer = await service.http.get(f"/partners/{organisation}/deliveries", headers=OPERATOR)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def test_a_receiver_failing_three_times_then_taking_it_ends_with_one_delivery_under_one_id(
    own_nats: NatsServer, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    receiver.answers = [500, 503, 500]
    async with partners_service(own_nats, tmp_path) as service:
        organisation, secret = await register(service, receiver.url)
        assert secret is not None
        case_id = share(service, organisation)

        async def sent() -> bool:
            rows = await deliveries(service, organisation)
            return bool(rows) and rows[0]["webhook_status"] == "sent"

        await eventually(sent, what="the webhook sent at last")
        [row] = await deliveries(service, organisation)

    ids = {headers["webhook-id"] for headers, _, _ in receiver.requests}
    assert len(receiver.requests) == 4 and ids == {row["event_id"]}
    assert list(receiver.delivered) == [row["event_id"]]  # one delivery, de-duplicated by id
    for headers, body, _ in receiver.requests:  # every attempt is signed, the body the same
        assert Webhook(secret).verify(body, headers)["subject"] == str(case_id)
    assert len({body for _, body, _ in receiver.requests}) == 1
    assert row["attempts"] == 4 and row["last_error"] is None
    assert [a["status_code"] for a in row["history"]] == [500, 503, 500, 200]
    tries = row["history"]
    at = [datetime.fromisoformat(a["at"]) for a in tries]
    retry_at = [datetime.fromisoformat(a["retry_at"]) for a in tries[:-1]]
    assert tries[-1]["retry_at"] is None
    for n in range(3):
        # Back-off with jitter: the n-th pause is half to all of 0.1 s * 2**n, and the next
        # attempt waits for it.
        pause = (retry_at[n] - at[n]).total_seconds()
        assert 0.05 * 2**n <= pause <= 0.1 * 2**n, (n, pause)
        assert at[n + 1] >= retry_at[n]
    print(
        "\nwebhook figures: attempts",
        row["attempts"],
        "statuses",
        [a["status_code"] for a in tries],
        "pauses (s)",
        [round((retry_at[n] - at[n]).total_seconds(), 3) for n in range(3)],
        "seconds from first to last",
        round((at[-1] - at[0]).total_seconds(), 3),
        "final",
        row["webhook_status"],
    )


async def test_a_tampered_body_a_wrong_secret_or_an_old_timestamp_fail_verification(
    own_nats: NatsServer, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    async with partners_service(own_nats, tmp_path) as service:
        organisation, secret = await register(service, receiver.url)
        assert secret is not None
        share(service, organisation)
        await eventually(lambda: _received(receiver, 1), what="the webhook")
    headers, body, _ = receiver.requests[0]
    Webhook(secret).verify(body, headers)  # as sent: fine
    tampered = json.loads(body)
    tampered["data"]["plan_version"] = 2
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(json.dumps(tampered, separators=(",", ":")), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    other = "whsec_" + "A" * 43
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)
    old = str(int((datetime.now(UTC) - timedelta(minutes=10)).timestamp()))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers | {"webhook-timestamp": old})


async def test_a_case_reaches_a_partner_in_order_the_next_waits_for_the_one_before(
    own_nats: NatsServer, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    receiver.answers = [500, 500]
    async with partners_service(own_nats, tmp_path) as service:
        organisation, _ = await register(service, receiver.url)
        case_id = share(service, organisation)
        share(service, organisation, case_id)  # a second notification of the same case

        async def both_sent() -> bool:
            rows = await deliveries(service, organisation)
            return [r["webhook_status"] for r in rows] == ["sent", "sent"]

        await eventually(both_sent, what="both sent")
        first, second = await deliveries(service, organisation)
    order = [headers["webhook-id"] for headers, _, _ in receiver.requests]
    assert order == [first["event_id"]] * 3 + [second["event_id"]]


async def test_an_endpoint_answering_410_is_disabled_until_it_is_set_again(
    own_nats: NatsServer, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    receiver.answers = [410]
    async with partners_service(own_nats, tmp_path) as service:
        organisation, _ = await register(service, receiver.url)
        share(service, organisation)

        async def failed() -> bool:
            rows = await deliveries(service, organisation)
            return bool(rows) and rows[0]["webhook_status"] == "failed"

        await eventually(failed, what="the 410 recorded")
        partner = (await service.http.get(f"/partners/{organisation}", headers=OPERATOR)).json()
        assert partner["webhook"]["enabled"] is False
        assert "410" in partner["webhook"]["disabled_because"]
        share(service, organisation)  # another case: held, not sent to a gone endpoint
        assert not service.app.registry().partner(organisation).sends_webhooks
        held = (await deliveries(service, organisation))[1]
        assert (held["webhook_status"], held["attempts"]) == ("pending", 0)
        again = await service.http.put(
            f"/partners/{organisation}/webhook", json={"url": receiver.url}, headers=OPERATOR
        )
        assert again.status_code == 200, again.text

        async def second_sent() -> bool:
            rows = await deliveries(service, organisation)
            return [r["webhook_status"] for r in rows] == ["failed", "sent"]

        await eventually(second_sent, what="the held one sent once set again")
        [first, _] = await deliveries(service, organisation)
        assert "410" in first["detail"]


async def test_429_with_retry_after_slows_the_whole_destination_down(
    own_nats: NatsServer, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    receiver.answers = [429]
    receiver.retry_after = "1"
    async with partners_service(own_nats, tmp_path) as service:
        organisation, _ = await register(service, receiver.url)
        share(service, organisation)

        async def asked_to_wait() -> bool:
            return len(receiver.requests) == 1

        await eventually(asked_to_wait, what="the 429")
        share(service, organisation)  # another case: waits for the destination too

        async def all_sent() -> bool:
            rows = await deliveries(service, organisation)
            return len(rows) == 2 and all(r["webhook_status"] == "sent" for r in rows)

        await eventually(all_sent, what="both sent after the pause")
        first, other = await deliveries(service, organisation)
    asked, again = first["history"]
    # The endpoint asked for a second: the retry waited for it, and so did the other case's
    # first attempt (the destination slowed down as a whole).
    at, retry_at = datetime.fromisoformat(asked["at"]), datetime.fromisoformat(asked["retry_at"])
    assert asked["status_code"] == 429 and retry_at - at >= timedelta(seconds=1)
    assert datetime.fromisoformat(again["at"]) >= retry_at
    assert datetime.fromisoformat(other["history"][0]["at"]) >= retry_at
    assert len(receiver.requests) == 3


async def test_a_rotated_secret_signs_beside_the_old_one_until_it_expires(
    own_nats: NatsServer, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    async with partners_service(own_nats, tmp_path) as service:
        organisation, old = await register(service, receiver.url)
        rotated = await service.http.post(
            f"/partners/{organisation}/webhook/rotate", headers=OPERATOR
        )
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["webhook_secret"]
        assert new and new != old and rotated.json()["partner"]["webhook"]["signing_secrets"] == 2
        share(service, organisation)
        await eventually(lambda: _received(receiver, 1), what="the webhook")
    headers, body, _ = receiver.requests[0]
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert secret is not None
        Webhook(secret).verify(body, headers)


async def test_resend_by_hand_and_replay_from_a_time_send_the_same_id_again(
    own_nats: NatsServer, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    async with partners_service(own_nats, tmp_path) as service:
        organisation, _ = await register(service, receiver.url)
        before = datetime.now(UTC)
        share(service, organisation)
        share(service, organisation)
        await eventually(lambda: _received(receiver, 2), what="both webhooks")
        first, second = await deliveries(service, organisation)
        resent = await service.http.post(
            f"/partners/{organisation}/deliveries/{first['event_id']}/resend", headers=OPERATOR
        )
        assert resent.status_code == 200, resent.text
        await eventually(lambda: _received(receiver, 3), what="the resend")

        async def resend_recorded() -> bool:
            # The receiver has it before the worker records the attempt: until then the
            # notification is on its way, and a replay leaves it to finish.
            rows = {r["event_id"]: r for r in await deliveries(service, organisation)}
            again = rows[first["event_id"]]
            return bool(again["webhook_status"] == "sent" and again["attempts"] >= 2)

        await eventually(resend_recorded, what="the resend recorded as sent")
        replayed = await service.http.post(
            f"/partners/{organisation}/replay",
            json={"since": before.isoformat()},
            headers=bearer(f"partner-{organisation}", ["partner"], kring_organisation=organisation),
        )
        assert replayed.status_code == 200, replayed.text
        assert len(replayed.json()["replayed"]) == 2
        await eventually(lambda: _received(receiver, 5), what="the replay")
        other = await service.http.post(
            f"/partners/{organisation}/replay",
            json={"since": before.isoformat()},
            headers=bearer("partner-x", ["partner"], kring_organisation="someone-else"),
        )
        assert other.status_code == 403  # a partner replays its own webhooks only
    ids = [headers["webhook-id"] for headers, _, _ in receiver.requests]
    assert ids.count(first["event_id"]) == 3 and ids.count(second["event_id"]) == 2


async def test_a_delivery_is_given_up_after_the_window_with_its_last_error(
    own_nats: NatsServer, tmp_path: Path, receiver: WebhookReceiver
) -> None:
    receiver.answers = [500] * 100
    async with partners_service(own_nats, tmp_path, webhook_give_up_seconds=0.5) as service:
        organisation, _ = await register(service, receiver.url)
        share(service, organisation)

        async def failed() -> bool:
            rows = await deliveries(service, organisation)
            return bool(rows) and rows[0]["webhook_status"] == "failed"

        await eventually(failed, what="given up")
        [row] = await deliveries(service, organisation)
    assert row["last_error"] == "answered 500" and row["attempts"] == len(receiver.requests)
    assert row["detail"].startswith(f"gave up after {row['attempts']} attempts")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://127.0.0.1/kring", "loopback"),
        ("https://[::1]/kring", "loopback"),
        ("https://10.1.2.3/kring", "private"),
        ("https://192.168.0.7/kring", "private"),
        ("https://169.254.169.254/latest", "link-local"),
        ("https://100.64.0.1/kring", "not a public address"),
        ("https://[::ffff:127.0.0.1]/kring", "loopback"),
        ("https://localhost/kring", "loopback"),
        ("http://partner.example.org/kring", "https"),
        ("ftp://partner.example.org/kring", "https://"),
        ("https://user:pw@partner.example.org/kring", "no user or password"),
    ],
)
async def test_a_webhook_to_a_private_address_is_refused_unless_allowed(
    own_nats: NatsServer, tmp_path: Path, url: str, says: str
) -> None:
    async with partners_service(
        own_nats, tmp_path, webhook_allow_private=False, webhook_allow_http=False
    ) as service:
        body = {"organisation": f"org-{uuid.uuid4().hex[:8]}", "name": "X", "webhook_url": url}
        refused = await service.http.post("/partners", json=body, headers=OPERATOR)
        assert refused.status_code == 422, refused.text
        [problem] = refused.json()["detail"]
        assert problem["loc"] == ["body", "webhook_url"] and says in problem["msg"]
    async with partners_service(own_nats, tmp_path / "allowed") as allowed:
        if url.startswith("https://") and "@" not in url:
            body["organisation"] = f"org-{uuid.uuid4().hex[:8]}"
            answer = await allowed.http.post("/partners", json=body, headers=OPERATOR)
            assert answer.status_code == 201, answer.text


async def test_a_name_resolving_to_a_private_address_is_refused_at_connection(
    receiver: WebhookReceiver,
) -> None:
    # "localhost" passes no static check here: the guard resolves it when it connects.
    url = f"http://localhost:{receiver.port}/kring"
    async with guarded_client(TargetRules(allow_http=True), timeout=5) as client:
        with pytest.raises(TargetRefusedError, match="loopback"):
            await client.post(url, content=b"{}")
    assert receiver.requests == []  # nothing reached it
    async with guarded_client(TargetRules(allow_http=True, allow_private=True), 5) as allowed:
        answer = await allowed.post(url, content=b"{}")
        assert answer.status_code == 200
    assert len(receiver.requests) == 1


async def test_a_redirect_is_not_followed(receiver: WebhookReceiver) -> None:
    receiver.answers = [307]
    async with guarded_client(TargetRules(allow_http=True, allow_private=True), 5) as client:
        answer = await client.post(receiver.url, content=b"{}")
    assert answer.status_code == 307 and len(receiver.requests) == 1
    assert isinstance(answer, httpx.Response)


async def _received(receiver: WebhookReceiver, count: int) -> bool:
    return len(receiver.requests) >= count


async def test_a_replica_whose_term_ran_out_sends_no_webhook_and_the_next_term_sends_it_once(
    own_nats: NatsServer,
    tmp_path: Path,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A paused replica wakes with its webhook round due: it sends nothing (the lease's next
    holder will), where an e-mail or a publish would be held back the same way."""
    from shared import lease

    held = {"now": False}
    monkeypatch.setattr(lease._SoleTerm, "valid", lambda self: held["now"])
    async with partners_service(own_nats, tmp_path) as service:
        organisation, _ = await register(service, receiver.url)
        share(service, organisation)
        worker = WebhookWorker(
            service.app,
            source="kring-test",
            rules=TargetRules(allow_private=True, allow_http=True),
            policy=PartnersSettings(**own_nats.settings("partners")).retry_policy(),
        )
        try:
            with fence.within(lease._SoleTerm()), pytest.raises(fence.LeaseLostError):
                await worker.deliver_due()  # what the background job's round does, woken
        finally:
            await worker.close()
        [row] = await deliveries(service, organisation)
        assert receiver.requests == [] and row["attempts"] == 0
        held["now"] = True  # the next term

        async def sent() -> bool:
            rows = await deliveries(service, organisation)
            return bool(rows) and rows[0]["webhook_status"] == "sent"

        await eventually(sent, what="sent by the next term")
    assert len(receiver.requests) == 1
