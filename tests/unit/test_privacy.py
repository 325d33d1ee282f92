"""Personal data at rest: encrypted when a cipher key is configured, never in integration events."""

import sqlite3
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.intake.app import IntakeApplication
from services.intake.bus import translate
from shared.cipher import AESGCMCipher
from shared.settings import ServiceSettings
from shared.store import eventsourcing_env
from tests.factories import CLARIFICATION, REGIONS, REQUEST_BODY, principal

MANAGER = principal("rm", "regional_manager", regions=REGIONS)


def test_with_a_cipher_key_the_store_holds_no_readable_personal_data(tmp_path: Path) -> None:
    settings = ServiceSettings(
        service_name="intake", data_dir=tmp_path, cipher_key=SecretStr(AESGCMCipher.create_key(32))
    )
    app = IntakeApplication(env=eventsourcing_env(settings))
    case_id = app.submit(MANAGER, **REQUEST_BODY, informational_talk=False)
    assert app.get(case_id).central_persons == ["Johan"]
    app.close()
    raw = b"".join(
        row[0]
        for row in sqlite3.connect(settings.sqlite_path).execute("SELECT state FROM stored_events")
    )
    assert b"Johan" not in raw and b"Ria" not in raw


def test_the_integration_event_carries_no_names_or_description(tmp_path: Path) -> None:
    app = IntakeApplication(
        env=eventsourcing_env(ServiceSettings(service_name="intake", data_dir=tmp_path))
    )
    case_id = app.submit(MANAGER, **REQUEST_BODY, informational_talk=False)
    app.clarify(case_id, MANAGER, **CLARIFICATION)
    app.accept(case_id, MANAGER)
    app.close()
    stored = IntakeApplication(
        env=eventsourcing_env(ServiceSettings(service_name="intake", data_dir=tmp_path))
    )
    events = [translate(e) for e in stored.events.get(case_id)]
    stored.close()
    published = [e for e in events if e is not None]
    assert [e.name for e in published] == ["request-submitted", "request-received"]
    for event in published:
        text = event.model_dump_json()
        for personal in ("Johan", "Ria", "grow up"):
            assert personal not in text


def test_the_stores_cipher_reads_and_writes_eventsourcings_own_layout() -> None:
    # A store written with eventsourcing's AESCipher (pycryptodome) reads with Kring's, and back.
    from eventsourcing.cipher import AESCipher
    from eventsourcing.utils import Environment

    key = AESGCMCipher.create_key(32)
    theirs = AESCipher(Environment(env={"CIPHER_KEY": key}))
    ours = AESGCMCipher.of_key(key)
    assert ours.decrypt(theirs.encrypt(b"Johan (8)")) == b"Johan (8)"
    assert theirs.decrypt(ours.encrypt(b"Johan (8)")) == b"Johan (8)"
    damaged = bytearray(ours.encrypt(b"Johan (8)"))
    damaged[-1] ^= 1
    with pytest.raises(ValueError, match="damaged"):
        ours.decrypt(bytes(damaged))
