"""Where the time goes: py-spy on the service processes (sampling, from outside), pyinstrument in
the bench's own process. Summaries name the functions holding the most CPU samples."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from bench.report import Report

TOP = 14
#: Frames that hold (nearly) everything and say nothing.
GENERIC = (
    "<module>",
    "run (asyncio",
    "run_forever",
    "_run_once",
    "_run (asyncio/events.py",
    "_run_module_as_main",
    "_run_code",
    "asyncio_run (uvicorn",
    "Server.run (uvicorn",
    "serve (shared/runtime.py",
    "run_until_complete",
    "Thread._bootstrap",
    "Thread.run (threading.py",
    "_WorkItem.run",
    "_worker (concurrent",
)


def py_spy() -> str | None:
    beside_python = Path(sys.executable).parent / "py-spy"
    return str(beside_python) if beside_python.exists() else shutil.which("py-spy")


def summarise(raw: Path, top: int = TOP) -> list[str]:
    """Inclusive and own share of CPU samples per function, from py-spy's collapsed stacks."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [_short(frame) for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    if not total:
        return ["    (no samples)"]
    lines = [f"    {total} samples; inclusive share (own share) per function:"]
    shown = 0
    for frame, count in inclusive.most_common():
        if count / total > 0.97 or any(generic in frame for generic in GENERIC):
            continue
        lines.append(f"    {100 * count / total:5.1f}% ({100 * own[frame] / total:4.1f}%)  {frame}")
        shown += 1
        if shown >= top:
            break
    lines.append("    most own time:")
    for frame, count in own.most_common(6):
        lines.append(f"    {100 * count / total:5.1f}%  {frame}")
    return lines


def _short(frame: str) -> str:
    """``function (path/to/site-packages/pkg/module.py:12)`` -> ``function (pkg/module.py)``."""
    name, _, location = frame.partition(" (")
    path = location.rstrip(")").rpartition(":")[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


async def profile_processes(
    report: Report,
    pids: Mapping[str, int],
    load: Callable[[], Coroutine[Any, Any, None]],
    work: Path,
    seconds: float,
) -> None:
    """Sample each process with py-spy while ``load`` runs, then print where each spends CPU."""
    binary = py_spy()
    if binary is None:
        report.note("py-spy is not installed: no profile of the services")
        return
    print(
        f"\n  profiling the services with py-spy for {seconds:.0f} s under max load"
        " (CPU: samples of the thread holding the GIL) ..."
    )
    outputs = {name: work / f"py-spy-{name}.txt" for name in pids}
    samplers = [
        await asyncio.create_subprocess_exec(
            binary,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(outputs[name]),
            "--nonblocking",
            # Only the thread holding the GIL: where CPU goes. Without it, threads waiting in
            # epoll or on the executor's queue count as busy (py-spy cannot tell idle there).
            "--gil",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]
    load_task = asyncio.create_task(load())
    await asyncio.gather(*(sampler.wait() for sampler in samplers))
    await load_task
    for name, output in outputs.items():
        print(f"  {name}:")
        if not output.exists():
            print("    (py-spy wrote nothing: is ptrace allowed here?)")
            continue
        for line in summarise(output):
            print(line)
    report.note(f"py-spy collapsed stacks kept in {work}")


def pyinstrument_profiler() -> Any:
    """A pyinstrument profiler if installed, else None."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        return None
    return Profiler(interval=0.0005, async_mode="disabled")


def print_pyinstrument(profiler: Any, title: str) -> None:
    print(f"\n  where the time goes ({title}, pyinstrument):")
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    for line in text.splitlines()[6:60]:
        print(f"    {line}")
