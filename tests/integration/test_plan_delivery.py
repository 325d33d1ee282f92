"""The plan's e-mail copies through the real SMTP adapter to a real SMTP server (aiosmtpd on a
free port): sent once with the PDF attached, a refused address recorded as failed with a reason
that does not quote it, a server that keeps answering "try later" given up after the set tries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.plans.app import PlansApplication
from services.plans.delivery import DeliveryWorker
from services.plans.mail import SmtpMailer
from shared.settings import ServiceSettings
from shared.store import eventsourcing_env
from tests.factories import coordinator_assigned, delivered, principal, request_received
from tests.servers import Mailbox, free_port, smtp_server
from tests.unit.test_plans_rules import PLAN, conference, content

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
