"""``kring demo``: one sample case from request to follow-up, through the public APIs only.

It watches the KRING stream for the case's events (an ordered consumer from "now on") while it
drives each step over HTTP, and prints both as they happen.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date
from typing import Any

import nats
from nats.js.api import DeliverPolicy

from kring.client import Caller, KringClient, audit_line
from shared.subjects import ALL_SUBJECTS

REQUESTER = Caller("demo-requester", "requester")
MANAGER = Caller("demo-regional-manager", "regional_manager")
COORDINATOR = Caller("demo-coordinator", "coordinator")


def say(step: str) -> None:
    print(f"\n▶ {step}", flush=True)


class EventWatcher:
    """Collects the integration events of one case from the stream."""

    def __init__(self) -> None:
        self.case_id: str | None = None
        self.seen: list[dict[str, Any]] = []
        self._arrived = asyncio.Condition()

    async def on_message(self, message: Any) -> None:
        envelope = json.loads(message.data)
        if self.case_id is None or envelope.get("subject") != self.case_id:
            return
        self.seen.append(envelope)
        print(
            f"  ◀ event {envelope['type']:<36} from {envelope['source']:<20} id {envelope['id']}",
            flush=True,
        )
        async with self._arrived:
            self._arrived.notify_all()

    async def wait_for(self, cloud_type: str, patience: float) -> dict[str, Any]:
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: any(e["type"] == cloud_type for e in self.seen)),
                patience,
            )
        return next(e for e in self.seen if e["type"] == cloud_type)


async def run_demo(nats_url: str, *, region: str, patience: float) -> None:
    client = KringClient()
    watcher = EventWatcher()
    try:
        connection = await asyncio.wait_for(nats.connect(nats_url), 5)
    except Exception:  # explained to the user below
        raise TimeoutError(f"cannot reach NATS at {nats_url}: is Kring running?") from None
    js = connection.jetstream()
    subscription = await js.subscribe(
        ALL_SUBJECTS,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.NEW,
        cb=watcher.on_message,
    )
    try:
        await _walk(client, watcher, region, patience)
    finally:
        await subscription.unsubscribe()
        await connection.close()
        client.close()


def _call(
    client: KringClient, service: str, method: str, path: str, caller: Caller, body: Any = None
) -> dict[str, Any]:
    response = client.request(service, method, path, caller=caller, json=body)
    if response.status_code >= 400:
        raise RuntimeError(f"{service} {method} {path}: {response.status_code} {response.text}")
    result: dict[str, Any] = response.json()
    return result


async def _until_ready(
    client: KringClient, service: str, path: str, caller: Caller, body: Any, patience: float
) -> dict[str, Any]:
    """Retry a command while the service has not yet heard what makes it valid."""
    deadline = time.monotonic() + patience
    while True:
        response = client.request(service, "POST", path, caller=caller, json=body)
        if response.status_code < 400:
            result: dict[str, Any] = response.json()
            return result
        if response.status_code not in (404, 409) or time.monotonic() > deadline:
            raise RuntimeError(f"{service} POST {path}: {response.status_code} {response.text}")
        await asyncio.sleep(0.2)


async def _walk(client: KringClient, watcher: EventWatcher, region: str, patience: float) -> None:
    say(f"A coordinator joins the pool for {region}")
    _call(
        client,
        "coordination",
        "POST",
        "/coordinators",
        MANAGER,
        {
            "coordinator_id": "demo-coordinator",
            "regions": [region],
            "languages": ["nl"],
            "capacity": 50,
        },
    )

    say("A grandmother requests a family conference for Johan (8)")
    created = _call(
        client,
        "intake",
        "POST",
        "/cases",
        REQUESTER,
        {
            "requester": {"name": "Oma Ria", "relation": "family"},
            "central_persons": ["Johan"],
            "model": "family",
            "region": region,
            "languages": ["nl"],
            "description": "Where can Johan (8) grow up safely, and what does that need?",
        },
    )
    case_id = created["case_id"]
    watcher.case_id = case_id
    print(f"  case {case_id}")

    say("The regional manager clarifies the request: the conference question and funding")
    _call(
        client,
        "intake",
        "POST",
        f"/cases/{case_id}/clarify",
        MANAGER,
        {
            "conference_questions": [
                "Where can Johan (8) grow up safely, and what does that need?"
            ],
            "funding": {"payer": "municipality", "organisation": "Gemeente Utrecht"},
            "minimum_requirements": [
                {
                    "requirement": "Living with mother's partner is not a solution.",
                    "set_by": {
                        "name": "J. de Vries",
                        "organisation": "Jeugdzorg Utrecht",
                        "role": "family guardian",
                    },
                }
            ],
        },
    )

    say("The regional manager accepts the request for a conference")
    _call(client, "intake", "POST", f"/cases/{case_id}/accept", MANAGER)
    await watcher.wait_for("nl.kring.request-received.v1", patience)
    await watcher.wait_for("nl.kring.coordinator-assigned.v1", patience)

    say("The coordinator calls the grandmother: first contact, within the deadline")
    _call(client, "coordination", "POST", f"/cases/{case_id}/contact", COORDINATOR)

    say("The conference is held: information, private family time, the plan presented")
    await _until_ready(
        client,
        "coordination",
        f"/cases/{case_id}/conference",
        COORDINATOR,
        {
            "held_on": date.today().isoformat(),
            "parts": ["information", "plan_making", "presentation"],
            "attendance": {
                "information": {"family": 6, "professional": 2, "coordinator": 1},
                "plan_making": {"family": 6},
                "presentation": {"family": 6, "professional": 1, "coordinator": 1},
            },
        },
        patience,
    )
    await watcher.wait_for("nl.kring.conference-held.v1", patience)

    say("The coordinator writes up the plan")
    await _until_ready(
        client,
        "plans",
        f"/cases/{case_id}/plan",
        COORDINATOR,
        {
            "agreements": [
                {"who": "father", "what": "Johan grows up with his father"},
                {"who": "uncle Herman", "what": "pays for after-school care"},
                {"who": "Wim and Johan", "what": "go swimming together", "when": "every Friday"},
            ],
            "watched_by": "uncle Herman",
            "if_something_does_not_work": "aunt Edith calls mother",
        },
        patience,
    )

    say("The plan goes to every participant")
    _call(
        client,
        "plans",
        "POST",
        f"/cases/{case_id}/plan/distribute",
        COORDINATOR,
        {
            "recipients": [
                {"role": "central_person"},
                {"role": "family"},
                {"role": "professional", "organisation": "Jeugdzorg Utrecht"},
            ],
            "shared_with_organisations": ["Jeugdzorg Utrecht"],
        },
    )
    await watcher.wait_for("nl.kring.plan-distributed.v1", patience)

    follow_up = await _follow_up(client, case_id, patience)
    due_at = follow_up["timers"][0]["due_at"]
    say(f"Follow-up scheduled for {due_at}; waiting for it to come due")
    await watcher.wait_for("nl.kring.follow-up-due.v1", patience)

    say(f"The audit trail (kring audit {case_id})")
    for entry in client.history(case_id):
        print(f"  {audit_line(entry)}")
    print("\nDone: one case from request to follow-up.")


async def _follow_up(client: KringClient, case_id: str, patience: float) -> dict[str, Any]:
    deadline = time.monotonic() + patience
    while True:
        response = client.request("followup", "GET", f"/cases/{case_id}")
        if response.status_code == 200:
            result: dict[str, Any] = response.json()
            return result
        if time.monotonic() > deadline:
            raise TimeoutError("follow-up never heard of the distributed plan")
        await asyncio.sleep(0.2)
