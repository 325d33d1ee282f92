"""Poison through a real consumer: coordination as its own process on a real nats-server meets a
malformed JSON, an unknown CloudEvents type, a sound envelope with invalid data, an oversized
message, a sound event with a malformed ``Kring-Position`` header and one whose envelope names
another origin than its subject and headers, among intake's events. Each is parked on
``KRING_DLQ`` with its reason and counted on ``/metrics``; the valid event after them is applied;
``kring dlq list`` shows them and ``kring dlq replay`` has coordination try one again, which
answers that it is still poison and leaves it parked (the replay of one made valid by a fix is in
``test_consumer.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.consumer import REASON_HEADER, durable_name
from shared.envelope import MAX_MESSAGE_BYTES
from shared.subjects import DLQ_STREAM, STREAM
from tests.factories import bus_headers, envelope, headers, request_received
from tests.faults.poison import OVERSIZED, REASONS, poison
from tests.harness import eventually, staff_headers
from tests.servers import NatsServer, ServiceProcess

CONSUMER = durable_name("coordination", "intake")


@pytest.fixture
def coordination(own_nats: NatsServer, tmp_path: Path) -> Iterator[ServiceProcess]:
    process = ServiceProcess("coordination", own_nats, tmp_path).start()
    yield process
    process.stop()


def kring(nats: NatsServer, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI, as the operator."""
    return subprocess.run(
        [sys.executable, "-m", "kring.cli", *args],
        env={**os.environ, **nats.env("operator")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def dead_letter_counts(metrics: str) -> dict[str, float]:
    """``kring_dead_letters_total`` of this consumer, by reason."""
    counts = {}
    for line in metrics.splitlines():
        if line.startswith("kring_dead_letters_total{") and f'consumer="{CONSUMER}"' in line:
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            counts[reason] = float(line.rsplit(" ", 1)[1])
    return counts


async def test_poison_is_parked_with_its_reason_and_counted_and_the_consumer_keeps_flowing(
    own_nats: NatsServer, coordination: ServiceProcess
) -> None:
    async with httpx.AsyncClient(
        base_url=coordination.url, timeout=10, headers=staff_headers()
    ) as http:
        await eventually(lambda: _ready(http), what="coordination ready")
        registered = await http.post(
            "/coordinators",
            json={"coordinator_id": "c1", "regions": ["Utrecht"], "languages": ["nl"]},
            headers=headers(),
        )
        assert registered.status_code == 201, registered.text

        connection = await own_nats.connect("intake")  # the poison is on intake's subjects
        operator = await own_nats.connect("operator")  # who reads consumers and dead letters
        try:
            js = connection.jetstream()
            # The oversized one must reach the consumer: NATS carries it, the envelope refuses.
            poisons = [poison(reason, n) for n, reason in enumerate(REASONS, start=1)]
            oversized = next(p for p in poisons if p.reason == OVERSIZED)
            assert MAX_MESSAGE_BYTES < len(oversized.body) < connection.max_payload
            for p in poisons:
                await js.publish(p.subject, p.body, headers=p.headers)
            event = request_received(case_id=uuid.uuid4())
            last = await js.publish(
                event.subject(), envelope(event, position=1), headers=bus_headers("intake", 1)
            )

            # The consumer keeps flowing: the valid event after the poison is applied, once.
            await eventually(lambda: _known(http, event.case_id), what="the valid event applied")
            watch = operator.jetstream()
            await eventually(lambda: _acked(watch, last.seq), what="all handled")
            history = (await http.get(f"/cases/{event.case_id}/history")).json()
            assert [e["type"] for e in history] == ["Received", "CoordinatorAssigned"]

            # Each poison message is parked once, as published, with its reason.
            parked = await _parked(watch)
            assert sorted(p["reason"] for p in parked) == sorted(REASONS)
            for p in poisons:
                [copy] = [q for q in parked if q["body"] == p.body]
                assert copy["reason"] == p.reason
                assert copy["consumer"] == CONSUMER
                assert copy["subject"] == p.subject
                assert copy["detail"]
        finally:
            await connection.close()
            await operator.close()

        metrics = (await http.get("/metrics")).text
        assert dead_letter_counts(metrics) == dict.fromkeys(REASONS, 1.0)

        # An operator sees them ...
        listed = kring(own_nats, "dlq", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        letters = json.loads(listed.stdout)
        assert sorted(letter["reason"] for letter in letters) == sorted(REASONS)
        assert {letter["consumer"] for letter in letters} == {CONSUMER}
        text = kring(own_nats, "dlq", "list")
        assert text.returncode == 0, text.stderr
        assert f"{len(REASONS)} dead letter(s)" in text.stdout
        for reason in REASONS:
            assert f"1  {CONSUMER}  {reason}" in text.stdout

        # ... and retries one: coordination reads it from KRING again, still poison; the letter
        # stays where it is, and nothing is parked twice.
        malformed = next(letter for letter in letters if letter["reason"] == REASONS[0])
        replayed = kring(own_nats, "dlq", "replay", str(malformed["sequence"]))
        assert replayed.returncode == 1, replayed.stdout
        assert "replayed 0 dead letter(s)" in replayed.stdout
        assert f"{malformed['sequence']}: poison: {REASONS[0]}" in replayed.stderr
        again = json.loads(kring(own_nats, "dlq", "list", "--json").stdout)
        assert again == letters
        counts = dead_letter_counts((await http.get("/metrics")).text)
        assert counts == dict.fromkeys(REASONS, 1.0)
        # Nothing else changed: still one case, one coordinator's open case.
        pool = (await http.get("/coordinators")).json()["items"]
        assert pool[0]["open_cases"] == 1


async def _ready(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/health/ready")).status_code == 200
    except httpx.TransportError:
        return False


async def _known(http: httpx.AsyncClient, case_id: Any) -> bool:
    return (await http.get(f"/cases/{case_id}")).status_code == 200


async def _acked(js: Any, sequence: int) -> bool:
    info = await js.consumer_info(STREAM, CONSUMER)
    return bool(info.ack_floor.stream_seq >= sequence and info.num_ack_pending == 0)


async def _parked(js: Any) -> list[dict[str, Any]]:
    info = await js.stream_info(DLQ_STREAM)
    parked = []
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        message = await js.get_msg(DLQ_STREAM, seq=sequence)
        found = message.headers or {}
        parked.append(
            {
                "reason": found[REASON_HEADER],
                "consumer": found["Kring-DLQ-Consumer"],
                "subject": found["Kring-DLQ-Subject"],
                "detail": found.get("Kring-DLQ-Detail", ""),
                "body": message.data,
            }
        )
    return parked
