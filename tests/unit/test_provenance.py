"""Where a message says it comes from must agree everywhere (``shared.envelope.verify``); every
header is parsed defensively, and a disagreement names what, never a value."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.envelope import POSITION_HEADER, PoisonMessageError, decode, parse_position, verify
from tests.factories import NOW, bus_headers, envelope, request_received
from tests.faults.poison import PROVENANCE, poison

EVENT = request_received()
SUBJECT = EVENT.subject()


def check(body: bytes, subject: str = SUBJECT, headers: dict[str, Any] | None = None) -> None:
    verify(decode(body), subject, bus_headers("intake", 4) if headers is None else headers)


def test_a_relayed_message_agrees_with_itself() -> None:
    check(envelope(EVENT, 4))


@pytest.mark.parametrize(
    "value", ["abc", "", "0", "-3", "4.0", "1e3", " 4", "\uff14", "9" * 20, "4\n"]
)
def test_a_position_header_that_is_not_a_position_is_a_malformed_header(value: str) -> None:
    assert parse_position(value) is None
    with pytest.raises(PoisonMessageError) as refused:
        check(envelope(EVENT, 4), headers=bus_headers("intake", 4) | {POSITION_HEADER: value})
    assert refused.value.reason == "malformed-header"
    assert value.strip() not in refused.value.detail or not value.strip()


@pytest.mark.parametrize(
    ("body", "subject", "headers", "named"),
    [
        (envelope(EVENT, 4), "kring.coordination.request-received", None, "not published on"),
        (envelope(EVENT, 4), SUBJECT, bus_headers("coordination", 4), "Kring-Origin"),
        (envelope(EVENT, 4), SUBJECT, bus_headers("intake", 5), "Kring-Position header is not 4"),
        (envelope(EVENT, 4), SUBJECT, {}, "Kring-Origin header"),
        (envelope(EVENT, 4, origin="followup"), SUBJECT, bus_headers("followup", 4), "kringorigin"),
    ],
    ids=["another-subject", "origin-header", "position-header", "no-headers", "origin"],
)
def test_any_disagreement_is_a_provenance_mismatch_naming_what(
    body: bytes, subject: str, headers: dict[str, str], named: str
) -> None:
    with pytest.raises(PoisonMessageError) as refused:
        check(body, subject, headers)
    assert refused.value.reason == "provenance-mismatch"
    assert named in refused.value.detail


def test_the_source_and_id_must_name_the_origin_and_position() -> None:
    for field, value in (("source", "/kring/followup"), ("id", "intake:5")):
        body = json.loads(envelope(EVENT, 4)) | {field: value}
        with pytest.raises(PoisonMessageError) as refused:
            check(json.dumps(body).encode())
        assert refused.value.reason == "provenance-mismatch", field


def test_the_poison_that_says_it_comes_from_elsewhere_is_refused() -> None:
    forged = poison(PROVENANCE, 1)
    with pytest.raises(PoisonMessageError) as refused:
        verify(decode(forged.body), forged.subject, forged.headers)
    assert refused.value.reason == PROVENANCE
    assert str(NOW.year) not in refused.value.detail  # names fields, not values
