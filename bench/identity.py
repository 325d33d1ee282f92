"""What identity costs a read: checking a bearer token (its key set cached), and recording the
read in the access log, alone and with many readers at once (they share commits).

Baselines in the same run: a case read without the gate and the log (``app.get``), against the
same read as the API makes it (``app.read``: the rule, then the log)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import Report, section
from bench.servers import start_issuer, stop_issuer
from kring.issuer import KEY_FILE, Signer
from services.coordination.app import CoordinationApplication
from shared.actor import Role
from shared.envelope import Delivered
from shared.events import RequestReceived
from shared.identity import Principal
from shared.settings import ServiceSettings
from shared.store import eventsourcing_env
from shared.tokens import OIDCConfig, TokenValidator


async def token_cost(report: Report, work: Path, calls: int) -> None:
    from cryptography.hazmat.primitives import serialization

    process, url = start_issuer(work)
    try:
        key: Any = serialization.load_pem_private_key(
            (work / "issuer" / "keys" / KEY_FILE).read_bytes(), password=None
        )
        signer = Signer(key, issuer=url, audience="kring", lifetime=3600)
        tokens = [
            signer.sign({"sub": f"anna-{n}", "roles": ["regional_manager"]}) for n in range(calls)
        ]
        validator = TokenValidator(OIDCConfig(issuer=url))
        await validator.principal(tokens[0])  # the key set, fetched once
        began = time.perf_counter()
        for token in tokens[1:]:
            await validator.principal(token)
        first = (time.perf_counter() - began) / (calls - 1) * 1e6
        report.add("token_check", "a new bearer token checked (RS256 signature)", first, "µs")
        began = time.perf_counter()
        for token in tokens[1:]:
            await validator.principal(token)
        again = (time.perf_counter() - began) / (calls - 1) * 1e6
        report.add("token_again", "the same token again (checked within the minute)", again, "µs")
    finally:
        stop_issuer(process)


def access_log_cost(report: Report, work: Path, reads: int, readers: int) -> None:
    # The application alone: no HTTP, so no issuer is asked (the name is only required).
    settings = ServiceSettings(
        service_name="coordination", data_dir=work / "store", oidc_issuer="http://127.0.0.1:1"
    )
    app = CoordinationApplication(env=eventsourcing_env(settings))
    try:
        manager = Principal(
            subject="rm", name="rm", roles=frozenset({Role.REGIONAL_MANAGER}), regions=("Utrecht",)
        )
        app.register_coordinator("c1", ["Utrecht"], ["nl"], 9, manager)
        now = datetime.now(UTC)
        case_id = uuid.uuid4()
        event = RequestReceived(
            case_id=case_id,
            model="family",
            region="Utrecht",
            languages=["nl"],
            submitted_at=now,
            accepted_at=now,
        )
        app.process(
            Delivered(event=event, origin="intake", position=1, event_id="intake:1", time=now)
        )
        began = time.perf_counter()
        for _ in range(reads):
            app.get(case_id)
        bare = (time.perf_counter() - began) / reads * 1000
        report.add("read_bare", "a case read, no gate and no access log (app.get)", bare, "ms")
        began = time.perf_counter()
        for _ in range(reads):
            app.read(case_id, manager)
        logged = (time.perf_counter() - began) / reads * 1000
        report.add(
            "read_logged",
            "the same read checked and recorded (app.read), one at a time",
            logged,
            "ms",
            baseline="read_bare",
        )

        commits_before = app.access_log.commits
        start = threading.Barrier(readers)
        each = reads // readers

        def reader() -> None:
            start.wait()
            for _ in range(each):
                app.read(case_id, manager)

        threads = [threading.Thread(target=reader) for _ in range(readers)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - began
        done = each * readers
        report.add(
            "read_logged_concurrent",
            f"recorded reads per second, {readers} readers at once",
            done / seconds,
            "reads/s",
        )
        report.add(
            "reads_per_commit",
            f"reads per access-log commit, {readers} readers at once",
            done / max(1, app.access_log.commits - commits_before),
            "reads",
        )
        assert len(app.access_log.entries(case_id)) == reads + done
    finally:
        app.close()


async def identity_bench(report: Report, work: Path, calls: int = 2000, reads: int = 640) -> None:
    section("identity: a token checked, a read recorded")
    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    await token_cost(report, work, calls)
    await asyncio.to_thread(access_log_cost, report, work, reads, 16)
