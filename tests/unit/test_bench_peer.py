"""The benchmark's peer (``bench.peer``): the four applications as one eventsourcing System,
driven by commands from many threads at once, as its HTTP API drives it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.peer import PEER_CLASSES, SYSTEM, PeerRunner, runner_env
from services.coordination.settings import CoordinationSettings
from services.followup.settings import FollowupSettings
from services.intake.settings import IntakeSettings
from services.plans.settings import PlansSettings
from shared.settings import ServiceSettings
from tests.factories import CLARIFICATION, REGIONS, REQUEST_BODY, principal

MANAGER = principal("manager", "regional_manager", regions=REGIONS)


def settings(tmp_path: Path) -> dict[str, ServiceSettings]:
    return {
        "intake": IntakeSettings(data_dir=tmp_path),
        "coordination": CoordinationSettings(data_dir=tmp_path),
        "plans": PlansSettings(data_dir=tmp_path),
        "followup": FollowupSettings(data_dir=tmp_path),
    }


def accept_one(intake: Any) -> str:
    case_id = intake.submit(principal("ria", "requester"), **REQUEST_BODY)
    intake.clarify(case_id, MANAGER, **CLARIFICATION)
    intake.accept(case_id, MANAGER)
    return str(case_id)


class LateCaller(PeerRunner):
    """Another thread's save lands after the processing thread found nothing left to do and
    before it let go of the processing lock (eventsourcing 9.5.6's runner drops that prompt)."""

    late: Callable[[], None] | None = None

    def _process_prompted(self) -> None:
        super()._process_prompted()
        late, self.late = self.late, None
        if late is not None:
            thread = threading.Thread(target=late)
            thread.start()
            thread.join()


def test_a_prompt_arriving_as_the_processing_thread_lets_go_is_followed(tmp_path: Path) -> None:
    runner = LateCaller(SYSTEM, env=runner_env(settings(tmp_path)))
    runner.start()
    try:
        intake: Any = runner.get(PEER_CLASSES["intake"])
        first = intake.submit(principal("ria", "requester"), **REQUEST_BODY)
        intake.clarify(first, MANAGER, **CLARIFICATION)
        late: list[str] = []
        # While the last save of the first case is processed, a whole second case is stored.
        runner.late = lambda: late.append(accept_one(intake))
        intake.accept(first, MANAGER)
        plans: Any = runner.get(PEER_CLASSES["plans"])
        assert {str(r["case_id"]) for r in plans.views.cases(MANAGER)} == {str(first), *late}
    finally:
        runner.stop()


def test_commands_from_many_threads_are_all_followed_without_a_poke(tmp_path: Path) -> None:
    runner = PeerRunner(SYSTEM, env=runner_env(settings(tmp_path)))
    runner.start()
    try:
        intake: Any = runner.get(PEER_CLASSES["intake"])
        accepted: list[str] = []
        errors: list[BaseException] = []

        def one_case() -> None:
            try:
                accepted.append(accept_one(intake))
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=one_case) for _ in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert not errors
        coordination: Any = runner.get(PEER_CLASSES["coordination"])
        plans: Any = runner.get(PEER_CLASSES["plans"])
        assert {str(r["case_id"]) for r in coordination.views.cases(MANAGER)} == set(accepted)
        assert {str(r["case_id"]) for r in plans.views.cases(MANAGER)} == set(accepted)
    finally:
        runner.stop()
