"""Where a hop's time goes, stage by stage (``make bench BENCH_ONLY=hops``).

The bench starts the four service processes with this module imported at start
(``sitecustomize`` on their ``PYTHONPATH``, only when ``KRING_BENCH_HOP_TRACE`` names a folder):
it wraps five points of the running code, records the moment each event passes each of them
(wall clock, one machine), and writes them out when the process stops. Nothing of the services'
own code changes. The stages of a hop, upstream event to the downstream event it causes:

1. ``commit``: the upstream event made (its timestamp) → its transaction committed;
2. ``relay``: committed → the relay starts publishing it (woken, the log read, translated);
3. ``publish``: publishing → JetStream's ack (the server stores it, and syncs);
4. ``deliver``: acked → the downstream consumer's handler has it (push, FastStream's dispatch);
5. ``thread``: handler → the application call starts in a worker thread;
6. ``apply``: call started → the downstream event made (tracking checked, the policy's loads).
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

VARIABLE = "KRING_BENCH_HOP_TRACE"
_records: list[dict[str, Any]] = []
_lock = threading.Lock()


def _note(**record: Any) -> None:
    record["t"] = time.time()
    with _lock:
        _records.append(record)


def install(folder: str) -> None:
    """Wrap the five points (called in a service process, before it starts)."""
    from shared import consumer, relay
    from shared.application import KringApplication

    notify = KringApplication._notify

    def traced_notify(self: Any, recordings: list[Any]) -> None:
        for r in recordings:
            event = r.domain_event
            _note(
                stage="committed",
                origin=self.name,
                position=r.notification.id,
                case=str(event.originator_id),
                type=type(event).__name__,
                created=event.timestamp.timestamp(),
            )
        notify(self, recordings)

    KringApplication._notify = traced_notify  # type: ignore[method-assign]

    publish_once = relay.OutboxRelay._publish_once

    async def traced_publish(self: Any, item: Any) -> None:
        _note(stage="publishing", origin=self.origin, position=item.position)
        await publish_once(self, item)
        _note(stage="acked", origin=self.origin, position=item.position)

    relay.OutboxRelay._publish_once = traced_publish  # type: ignore[method-assign]

    handle_message = consumer.handle_message

    async def traced_handle(bus: Any, app: Any, name: str, message: Any, most: int) -> None:
        headers = message.raw_message.headers or {}
        _note(
            stage="received",
            origin=headers.get("Kring-Origin"),
            position=_int(headers.get("Kring-Position")),
            by=app.name,
        )
        await handle_message(bus, app, name, message, most)

    consumer.handle_message = traced_handle  # type: ignore[assignment]

    process = KringApplication.process

    def traced_process(self: Any, delivered: Any) -> bool:
        _note(
            stage="processing", origin=delivered.origin, position=delivered.position, by=self.name
        )
        return process(self, delivered)

    KringApplication.process = traced_process  # type: ignore[method-assign]

    def write() -> None:
        path = Path(folder) / f"trace-{os.getpid()}.jsonl"
        with _lock, path.open("w", encoding="utf-8") as out:
            for record in _records:
                out.write(json.dumps(record) + "\n")

    atexit.register(write)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def stages(
    folder: Path, hops: list[tuple[str, str, str, str]]
) -> dict[str, dict[str, list[float]]]:
    """Milliseconds per stage of each hop: ``hops`` are (name, upstream service, upstream event
    type, downstream service); the downstream event's moment is the downstream service's first
    event committed for the case after the message was processed."""
    records = [
        json.loads(line)
        for path in folder.glob("trace-*.jsonl")
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    by_key: dict[tuple[str, str, int], dict[str, Any]] = {}
    first_downstream: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in records:
        stage = r["stage"]
        if stage == "committed":
            key = ("committed", r["origin"], r["position"])
            by_key.setdefault(key, {}).update(
                committed=r["t"], created=r["created"], case=r["case"], type=r["type"]
            )
            first_downstream.setdefault((r["origin"], r["case"]), []).append((r["created"], r["t"]))
        elif r.get("position") is not None:
            origin = r["origin"]
            holder = by_key.setdefault(("committed", origin, r["position"]), {})
            name = stage if stage in ("publishing", "acked") else f"{stage}:{r.get('by')}"
            holder.setdefault(name, r["t"])
    found: dict[str, dict[str, list[float]]] = {}
    for name, up, up_type, down in hops:
        per_stage: dict[str, list[float]] = {
            s: [] for s in ("commit", "relay", "publish", "deliver", "thread", "apply", "hop")
        }
        for (_, origin, _position), t in by_key.items():
            if origin != up or t.get("type") != up_type:
                continue
            need = ("created", "committed", "publishing", "acked", f"received:{down}")
            if not all(k in t for k in need) or f"processing:{down}" not in t:
                continue
            made = [
                created
                for created, _ in first_downstream.get((down, str(t["case"])), [])
                if created >= t[f"processing:{down}"]
            ]
            if not made:
                continue
            downstream = min(made)
            points = [
                t["created"],
                t["committed"],
                t["publishing"],
                t["acked"],
                t[f"received:{down}"],
                t[f"processing:{down}"],
                downstream,
            ]
            for stage_name, (a, b) in zip(
                ("commit", "relay", "publish", "deliver", "thread", "apply"),
                itertools.pairwise(points),
                strict=True,
            ):
                per_stage[stage_name].append((b - a) * 1000)
            per_stage["hop"].append((downstream - t["created"]) * 1000)
        found[name] = per_stage
    return found


if os.environ.get(VARIABLE):
    install(os.environ[VARIABLE])
