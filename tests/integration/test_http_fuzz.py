"""Property-based HTTP fuzzing of every service's OpenAPI document: no 5xx, ever."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from services.coordination.bootstrap import build as build_coordination
from services.coordination.settings import CoordinationSettings
from services.followup.bootstrap import build as build_followup
from services.followup.settings import FollowupSettings
from services.intake.bootstrap import build as build_intake
from services.intake.settings import IntakeSettings
from services.plans.bootstrap import build as build_plans
from services.plans.settings import PlansSettings
from shared.runtime import build_service

BUILDERS: dict[str, tuple[Any, Any]] = {
    "intake": (build_intake, IntakeSettings),
    "coordination": (build_coordination, CoordinationSettings),
    "plans": (build_plans, PlansSettings),
    "followup": (build_followup, FollowupSettings),
}


@pytest.mark.parametrize("service_name", list(BUILDERS))
def test_no_input_makes_a_service_fail(service_name: str, tmp_path: Path) -> None:
    """The HTTP edge on a real store; the bus is not needed (and NATS is not there)."""
    build, settings_class = BUILDERS[service_name]
    definition = build(settings_class(nats_url="nats://127.0.0.1:1", data_dir=tmp_path))
    schema = schemathesis.openapi.from_asgi("/openapi.json", build_service(definition).api)
    # /health/ready answers 503 by design while NATS is away, as it is here.
    operations = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if op.path != "/health/ready"
    ]
    assert operations
    try:
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=30,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def no_server_error(case: Any) -> None:
                case.call_and_validate(checks=[not_a_server_error])

            no_server_error()
    finally:
        definition.app.close()
