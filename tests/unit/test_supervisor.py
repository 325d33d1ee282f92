"""``kring run``'s supervisor with real child processes: one that dies is started again and said
so; one that keeps dying at start is started ever more slowly, never in a tight loop; one whose
settings are wrong stops everything."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from kring import supervisor
from kring.supervisor import Child, StartupError, Supervisor
from shared import runtime


def dying(code: int) -> Child:
    command = [sys.executable, "-c", f"raise SystemExit({code})"]
    return Child("svc", subprocess.Popen(command))


def test_a_child_that_keeps_dying_at_start_comes_back_ever_more_slowly_and_is_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(supervisor, "RESTART_PAUSES", (0.0, 0.1, 0.2, 0.4))
    starts: list[float] = []

    def start() -> Child:
        starts.append(time.monotonic())
        return dying(3)

    watching = Supervisor({"svc": start})
    watching.start("svc")
    deadline = time.monotonic() + 30
    while len(starts) < 6:
        assert time.monotonic() < deadline, "not started again"
        watching.step()
        time.sleep(0.01)

    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("svc ")]
    assert said[0].startswith("svc exited after 0 s with exit code 3; starting it again in 0.1 s")
    assert "svc keeps crashing at start (3 times in a row), last with exit code 3" in said[2]
    pauses = [float(line.split("starting it again in ")[1].split(" s ")[0]) for line in said]
    assert pauses[:5] == [0.1, 0.2, 0.4, 0.4, 0.4]  # slower and slower, up to the longest
    for earlier, later, pause in zip(starts, starts[1:], pauses, strict=False):
        assert later - earlier >= pause  # never sooner than it says


def test_a_child_killed_by_a_signal_is_reported_with_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    watching = Supervisor({"svc": lambda: Child("svc", sleeper)})
    watching.start("svc")
    sleeper.send_signal(signal.SIGKILL)
    sleeper.wait()
    watching.step()
    assert "with exit code -9 (SIGKILL); starting it again in " in capsys.readouterr().err
    assert "svc" in watching.due


def test_a_child_whose_settings_are_wrong_stops_everything() -> None:
    assert supervisor.EXIT_CONFIG == runtime.EXIT_CONFIG  # what a service exits with then
    watching = Supervisor({"svc": lambda: dying(supervisor.EXIT_CONFIG)})
    watching.start("svc").process.wait()
    with pytest.raises(StartupError, match="svc cannot start with its settings"):
        watching.step()
