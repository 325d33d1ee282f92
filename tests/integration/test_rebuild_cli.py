"""``kring rebuild SERVICE`` as an operator runs it: progress on the terminal, killed with -9
half way and run again, it resumes and ends with the rows of the live read model; ordinary
mistakes are one line and exit code 2."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bench.history_seed import SeedClock, Seeder
from services.coordination.app import CoordinationApplication
from services.followup.app import FollowupApplication
from services.intake.app import IntakeApplication
from services.plans.app import PlansApplication
from shared.cipher import AESGCMCipher
from shared.settings import ServiceSettings
from shared.store import eventsourcing_env

APPS: dict[str, Any] = {
    "intake": IntakeApplication,
    "coordination": CoordinationApplication,
    "plans": PlansApplication,
    "followup": FollowupApplication,
}


def open_app(data: Path, name: str, clock: Any = None) -> Any:
    key = (data / "keys" / f"{name}.key").read_text().strip()
    settings = ServiceSettings(
        service_name=name,
        data_dir=data,
        oidc_issuer="http://issuer.invalid",
        cipher_key=SecretStr(key),
    )
    return APPS[name](env=eventsourcing_env(settings), clock=clock)


def kring(data: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRING_")}
    env |= {"KRING_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "kring.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def building(database: Path) -> int | None:
    """The position the rebuild in progress has reached (None: none in progress)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT position FROM coordination_views WHERE name = 'v1.rebuild'"
        ).fetchone()
    return None if row is None else int(row[0])


def test_a_rebuild_killed_half_way_resumes_and_ends_with_the_live_rows(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "keys").mkdir(parents=True)
    for name in APPS:
        (data / "keys" / f"{name}.key").write_text(AESGCMCipher.create_key(32) + "\n")
    clock = SeedClock()
    apps = {name: open_app(data, name, clock) for name in APPS}
    Seeder(**apps, clock=clock, seed=11, batch=50).seed(150)
    coordination = apps["coordination"]
    live = coordination.views.dump()
    end = coordination.recorder.max_notification_id()
    for app in apps.values():
        app.close()

    first = kring(data, "rebuild", "coordination")
    database = data / "coordination.sqlite"
    deadline = time.monotonic() + 60
    reached = None
    while time.monotonic() < deadline and first.poll() is None:
        reached = building(database)
        if reached:
            break
        time.sleep(0.002)
    assert reached, "the rebuild never got under way"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    stopped_at = building(database)
    assert stopped_at is not None and 0 < stopped_at < end

    second = kring(data, "rebuild", "coordination")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    lines = out.splitlines()
    assert lines[-1].startswith(f"coordination: rebuilt at position {end:,}")
    assert f"of {end:,} events" in out  # progress, with how far it has to go
    assert building(database) is None
    again = open_app(data, "coordination")
    try:
        assert again.views.dump() == live
    finally:
        again.close()


def test_ordinary_mistakes_are_one_line_and_exit_code_2(tmp_path: Path) -> None:
    unknown = kring(tmp_path, "rebuild", "console")  # it has no store
    _, err = unknown.communicate(timeout=60)
    assert unknown.returncode == 2
    assert err.strip().splitlines() == [
        "error: no service 'console': one of intake, coordination, plans, followup, partners"
    ]
    missing = kring(tmp_path / "nowhere", "rebuild", "intake")
    _, err = missing.communicate(timeout=60)
    assert missing.returncode == 2
    assert len(err.strip().splitlines()) == 1 and "no intake store at" in err
