"""The plan's e-mail copies through the real SMTP adapter to a real SMTP server (aiosmtpd on a
free port): sent once with the PDF attached, a refused address recorded as failed with a reason
that does not quote it, a server that keeps answering "try later" given up after the set tries,
any other failure to send counted the same way; addresses checked where they are entered."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from services.plans.app import PlansApplication
from services.plans.bootstrap import build as build_plans
from services.plans.delivery import DeliveryWorker
from services.plans.mail import SmtpMailer
from services.plans.settings import PlansSettings
from shared.settings import ServiceSettings
from shared.store import eventsourcing_env
from tests.factories import coordinator_assigned, delivered, headers, principal, request_received
from tests.harness import running
from tests.servers import Mailbox, NatsServer, free_port, smtp_server
from tests.unit.test_plans_rules import PLAN, clarification, conference, content

COORDINATOR = principal("c1", "coordinator")
REFUSED = "refused@example.org"
LATER = "later@example.org"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    refusals = {
        REFUSED: f"550 5.1.1 <{REFUSED}>: mailbox unavailable",
        LATER: f"451 4.3.0 <{LATER}>: try again later",
    }
    with smtp_server(refusals) as server:
        yield server


@pytest.fixture
def app(tmp_path: Path) -> Iterator[PlansApplication]:
    settings = ServiceSettings(service_name="plans", data_dir=tmp_path)
    plans = PlansApplication(env=eventsourcing_env(settings))
    yield plans
    plans.close()


def distributed_case(app: PlansApplication, addresses: dict[str, str]) -> uuid.UUID:
    case_id = uuid.uuid4()
    app.process(delivered(request_received(case_id), 1))
    app.note_clarification(case_id, clarification())
    app.process(delivered(coordinator_assigned(case_id), 1, origin="coordination"))
    app.process(delivered(conference(case_id), 2, origin="coordination"))
    app.record_recipients(
        case_id,
        [
            {
                "participant_id": pid,
                "name": pid,
                "role": None,
                "organisation": None,
                "channel": "email",
                "email": address,
                "address": None,
            }
            for pid, address in addresses.items()
        ],
        COORDINATOR,
    )
    app.write(case_id, content(PLAN), COORDINATOR)
    app.accept(case_id, 1, COORDINATOR)
    app.distribute(case_id, [], COORDINATOR)
    return case_id


def statuses(app: PlansApplication, case_id: uuid.UUID) -> dict[str, tuple[str, str | None]]:
    return {d["participant_id"]: (d["status"], d["detail"]) for d in app.get(case_id).deliveries}


async def test_an_email_copy_is_sent_once_with_the_plan_attached(
    app: PlansApplication, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    case_id = distributed_case(app, {"p-father": "father@example.org"})
    worker = DeliveryWorker(app, SmtpMailer("127.0.0.1", port, "kring@example.org"))

    assert await worker.deliver_pending() == 1
    assert await worker.deliver_pending() == 0  # recorded: never sent again

    assert len(box.messages) == 1
    message = box.messages[0]
    assert message["To"] == "father@example.org"
    attachment = next(iter(message.iter_attachments()))
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content().startswith(b"%PDF")
    assert statuses(app, case_id)["p-father"] == ("sent", None)
    # The other participants had no address: their copies wait for the coordinator.
    assert {s for pid, (s, _) in statuses(app, case_id).items() if pid != "p-father"} == {"pending"}


async def test_a_refused_address_is_recorded_as_failed_without_quoting_it(
    app: PlansApplication, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    case_id = distributed_case(app, {"p-father": REFUSED, "p-herman": "herman@example.org"})
    worker = DeliveryWorker(app, SmtpMailer("127.0.0.1", port, "kring@example.org"))

    assert await worker.deliver_pending() == 2
    status, detail = statuses(app, case_id)["p-father"]
    assert status == "failed" and detail is not None and "550" in detail
    assert REFUSED not in detail
    assert statuses(app, case_id)["p-herman"] == ("sent", None)
    assert [m["To"] for m in box.messages] == ["herman@example.org"]


async def test_try_again_later_is_retried_then_given_up_after_the_set_tries(
    app: PlansApplication, mailbox: tuple[Mailbox, int]
) -> None:
    _, port = mailbox
    case_id = distributed_case(app, {"p-father": LATER})
    worker = DeliveryWorker(app, SmtpMailer("127.0.0.1", port, "k@example.org"), max_attempts=3)

    assert await worker.deliver_pending() == 0
    assert statuses(app, case_id)["p-father"][0] == "pending"
    assert await worker.deliver_pending() == 0
    assert await worker.deliver_pending() == 1
    status, detail = statuses(app, case_id)["p-father"]
    assert status == "failed" and "451" in (detail or "")


async def test_an_unreachable_smtp_server_is_a_temporary_failure(app: PlansApplication) -> None:
    case_id = distributed_case(app, {"p-father": "father@example.org"})
    nobody = SmtpMailer("127.0.0.1", free_port(), "k@example.org", timeout=2)
    worker = DeliveryWorker(app, nobody, max_attempts=2)

    assert await worker.deliver_pending() == 0
    assert await worker.deliver_pending() == 1
    status, detail = statuses(app, case_id)["p-father"]
    assert status == "failed" and detail == "smtp: ConnectionRefusedError"


async def test_an_address_the_mailer_cannot_put_in_a_message_is_tried_then_recorded_failed(
    app: PlansApplication, mailbox: tuple[Mailbox, int]
) -> None:
    # Stored before addresses were checked at entry: smtplib raises no SMTP error for it (the
    # message header refuses it), and every such failure is an attempt all the same.
    unusable = "father@exa\u2028mple.org"
    box, port = mailbox
    case_id = distributed_case(app, {"p-father": unusable, "p-herman": "herman@example.org"})
    worker = DeliveryWorker(app, SmtpMailer("127.0.0.1", port, "k@example.org"), max_attempts=3)

    assert await worker.deliver_pending() == 1  # herman's copy; the father's was tried once
    assert statuses(app, case_id)["p-father"][0] == "pending"
    assert await worker.deliver_pending() == 0
    assert await worker.deliver_pending() == 1
    status, detail = statuses(app, case_id)["p-father"]
    assert (status, detail) == ("failed", "error: ValueError")
    assert await worker.deliver_pending() == 0  # recorded: never tried again
    assert [m["To"] for m in box.messages] == ["herman@example.org"]


async def test_an_international_address_a_server_cannot_take_fails_at_once(
    app: PlansApplication,
) -> None:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, enable_SMTPUTF8=False)
    controller.start()
    try:
        case_id = distributed_case(app, {"p-father": "jöse@example.org"})
        worker = DeliveryWorker(app, SmtpMailer("127.0.0.1", port, "k@example.org"))
        assert await worker.deliver_pending() == 1
    finally:
        controller.stop()
    status, detail = statuses(app, case_id)["p-father"]
    assert (status, detail) == ("failed", "smtp: international address not supported")
    assert box.messages == []


async def test_an_address_is_checked_where_it_is_entered_naming_the_field_not_echoing_it(
    own_nats: NatsServer, tmp_path: Path
) -> None:
    settings = PlansSettings(**own_nats.settings("plans"), data_dir=tmp_path)
    async with running(build_plans(settings)) as plans:
        case_id = uuid.uuid4()
        plans.app.process(delivered(request_received(case_id), 1))
        plans.app.process(delivered(coordinator_assigned(case_id), 1, origin="coordination"))
        plans.app.process(delivered(conference(case_id), 2, origin="coordination"))
        coordinator = headers("c1", "coordinator")

        def recipient(email: str) -> dict[str, object]:
            delivery = {"channel": "email", "email": email}
            return {
                "recipients": [{"participant_id": "p-father", "name": "Els", "delivery": delivery}]
            }

        before = plans.app.recorder.max_notification_id()
        for wrong in ("els@@example.org", "els@example", "els\u2028@example.org", "els@local host"):
            refused = await plans.http.post(
                f"/cases/{case_id}/plan/recipients", json=recipient(wrong), headers=coordinator
            )
            assert refused.status_code == 422, wrong
            [problem] = refused.json()["detail"]
            assert problem["loc"][-1] == "email"
            assert "els" not in json.dumps(problem["msg"]), "the address was echoed"
        assert plans.app.recorder.max_notification_id() == before

        taken = await plans.http.post(
            f"/cases/{case_id}/plan/recipients",
            json=recipient("Els@Bücher.Example.org"),
            headers=coordinator,
        )
        assert taken.status_code == 200, taken.text
        [entry] = plans.app.get(case_id).directory.values()
        assert entry["email"] == "Els@bücher.example.org"  # the domain normalised
