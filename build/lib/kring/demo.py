"""``kring demo``: one sample case from request to follow-up, through the public APIs only.

It drives the case with ``kring.workflow`` (the same steps the tests and the benchmark take),
watches the KRING stream for the case's events (as the analyst, with direct gets from "now on":
``shared.stream_read``), and prints both as they happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import httpx
from nats.aio.client import Client

from kring import workflow
from kring.client import (
    SERVICES,
    AccessError,
    DevLogin,
    KringClient,
    NatsCredentialsError,
    access_line,
    audit_line,
    connect_nats,
    service_url,
)
from shared.events import ConferenceModel
from shared.stream_read import DirectGetError, DirectReader, StoredMessage
from shared.subjects import ALL_SUBJECTS, STREAM

#: How often the demo looks for new events on the stream.
WATCH_SECONDS = 0.2


def say(step: str) -> None:
    print(f"\n▶ {step}", flush=True)


class EventWatcher:
    """Collects the integration events of one case from the stream."""

    def __init__(self) -> None:
        self.case_ids: set[str] = set()
        self.seen: list[dict[str, Any]] = []

    def on_message(self, message: StoredMessage) -> None:
        envelope = json.loads(message.data)
        if envelope.get("subject") not in self.case_ids:
            return
        self.seen.append(envelope)
        print(
            f"  ◀ event {envelope['type']:<44} from {envelope['source']:<20} id {envelope['id']}",
            flush=True,
        )


async def run_demo(
    nats_url: str, *, model: ConferenceModel, region: str, patience: float
) -> workflow.CaseRun:
    """Walk one case of ``model`` through the running system; raise ``DemoError`` saying what
    failed."""
    watcher = EventWatcher()
    try:
        connection = await connect_nats(nats_url)
    except NatsCredentialsError as error:
        raise DemoError(str(error)) from None
    except Exception:  # explained to the user
        raise DemoError(f"cannot reach NATS at {nats_url}: is Kring running (make run)?") from None
    stop = asyncio.Event()
    watching = asyncio.create_task(_watch(connection, watcher, stop))
    urls = {name: service_url(name) for name in SERVICES}
    tokens = DevLogin()
    try:
        async with httpx.AsyncClient() as http:
            session = workflow.Session(http, tokens)
            say(f"Everyone signs in with the development issuer at {tokens.issuer}")
            say(f"Coordinators join the pool for {region}")
            await workflow.join_pool(session, urls=urls, region=region, prefix="demo-coordinator")

            def observe(run: workflow.CaseRun, step: str, said: str) -> None:
                watcher.case_ids.add(run.case_id)  # follow its events from the first step on
                say(said)

            run = await workflow.run_case(
                session,
                model,
                urls=urls,
                region=region,
                key=f"demo-{uuid.uuid4()}",
                patience=patience,
                through_follow_up=True,
                observe=observe,
            )
    except (workflow.WorkflowError, AccessError) as error:
        raise DemoError(str(error)) from None
    finally:
        # The event as well as the cancel: Python 3.11's wait_for (in a direct get) can swallow
        # a cancellation that arrives as its answer does, and the watcher would go on forever.
        stop.set()
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        await connection.close()
    # The audit trail and who read the case: the regional manager of its region may see both.
    reader = tokens.token_sync(workflow.manager(region))
    _audit(run.case_id, reader)
    if run.follow_up_case_id:
        say(f"The follow-up case {run.follow_up_case_id} knows where it came from")
        _audit(run.follow_up_case_id, reader)
    say(f"Who read the case's personal data (kring access-log {run.case_id})")
    client = KringClient(token=reader)
    try:
        for entry in client.access_log(run.case_id):
            print(f"  {access_line(entry)}")
    finally:
        client.close()
    print(f"\nDone: one {model.value} case from request to follow-up.\ncase {run.case_id}")
    return run


async def _watch(connection: Client, watcher: EventWatcher, stop: asyncio.Event) -> None:
    """Every message the stream stores from now on, to ``watcher``, as it comes, until
    ``stop``."""
    start = (await connection.jetstream().stream_info(STREAM)).state.last_seq + 1
    async with DirectReader(connection, STREAM) as reader:
        while not stop.is_set():
            with contextlib.suppress(DirectGetError):  # a moment without the stream: go on
                async for batch in reader.read(ALL_SUBJECTS, start_seq=start):
                    for message in batch:
                        watcher.on_message(message)
                        start = message.seq + 1
            await asyncio.sleep(WATCH_SECONDS)


class DemoError(RuntimeError):
    """The demo could not go on; the message says why."""


def _audit(case_id: str, token: str) -> None:
    say(f"The audit trail (kring audit {case_id})")
    client = KringClient(token=token)
    try:
        for entry in client.history(case_id):
            print(f"  {audit_line(entry)}")
    finally:
        client.close()
