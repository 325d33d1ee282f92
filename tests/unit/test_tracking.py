"""Exactly-once effect: tracking by origin and position, exact, in any order."""

import uuid

from services.coordination.app import CoordinationApplication
from tests.factories import REGIONS, delivered, principal, request_received

MANAGER = principal("rm", "regional_manager", regions=REGIONS)


def test_the_same_position_applied_twice_changes_state_once(make_app) -> None:
    app = make_app(CoordinationApplication)
    app.register_coordinator("c1", ["Utrecht"], ["nl"], 5, MANAGER)
    message = delivered(request_received(), position=1)
    assert app.process(message) is True
    assert app.process(message) is False
    assert app.pool().load["c1"] == 1
    assert len(app.history(message.case_id)) == 2  # Received, CoordinatorAssigned


def test_a_lower_position_after_a_higher_one_is_still_applied(make_app) -> None:
    """Single-row tracking would call position 1 'done' after 2 and drop it
    (docs/architecture.md, "Outbox and tracking")."""
    app = make_app(CoordinationApplication)
    app.register_coordinator("c1", ["Utrecht"], ["nl"], 5, MANAGER)
    later, earlier = delivered(request_received(), 2), delivered(request_received(), 1)
    assert app.process(later) is True
    assert app.process(earlier) is True
    assert app.process(earlier) is False
    assert app.pool().load["c1"] == 2


def test_tracking_is_per_origin(make_app) -> None:
    app = make_app(CoordinationApplication)
    first = delivered(request_received(), 1, origin="intake")
    other_origin = delivered(request_received(), 1, origin="intake-eu")
    assert app.process(first) is True
    assert app.process(other_origin) is True


def test_tracking_survives_a_restart(make_app) -> None:
    first = make_app(CoordinationApplication)
    message = delivered(request_received(case_id=uuid.uuid4()), 5)
    assert first.process(message) is True
    first.close()
    again = make_app(CoordinationApplication)
    assert again.process(message) is False
