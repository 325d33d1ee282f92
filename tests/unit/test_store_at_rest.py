"""A store at rest on real SQLite files: opened only with the key it was written with, one
written without a key encrypted once when a key is given, the tables of an earlier release
taken over, files readable by their owner only, and a shredded case key in no file of the store
(WAL included) once its case is erased."""

from __future__ import annotations

import json
import sqlite3
import stat
import uuid
from base64 import b64decode
from contextlib import closing
from pathlib import Path

import pytest
from pydantic import SecretStr

from services.intake.app import IntakeApplication
from shared.at_rest import StoreKeyError
from shared.cipher import AESGCMCipher
from shared.erasure import CASE_KEY_PREFIX, CaseErasedError, ErasureReason
from shared.settings import ServiceSettings
from shared.store import eventsourcing_env
from tests.rawbytes import files_holding, key_forms, stored_case_key, text_forms
from tests.unit.test_erasure import MANAGER, submitted


def intake(data: Path, key: str | None = None, fallback: str | None = None) -> IntakeApplication:
    settings = ServiceSettings(
        service_name="intake",
        data_dir=data,
        cipher_key=None if key is None else SecretStr(key),
        cipher_key_fallback=None if fallback is None else SecretStr(fallback),
    )
    return IntakeApplication(env=eventsourcing_env(settings))


def sealed_under(database: Path, key: str) -> bool:
    """Whether every state (events and snapshots) and every case key of the store opens with
    ``key`` alone, inside its case key where it has one (erased cases' states aside)."""
    service = AESGCMCipher.of_key(key)
    case_keys: dict[str, str] = {}
    for case_id, wrapped in rows(database, "SELECT case_id, key FROM intake_case_keys"):
        if wrapped is not None:
            try:
                case_keys[str(case_id)] = service.decrypt(b64decode(str(wrapped))).decode()
            except ValueError:
                return False
    for table in ("stored_events", "stored_snapshots"):
        for originator, state in rows(database, f"SELECT originator_id, state FROM {table}"):
            assert isinstance(state, bytes)
            if state.startswith(CASE_KEY_PREFIX):
                case_key = case_keys.get(str(uuid.UUID(str(originator))))
                if case_key is None:
                    continue  # its case was erased
                state = AESGCMCipher.of_key(case_key).decrypt(state[len(CASE_KEY_PREFIX) :])
            try:
                json.loads(service.decrypt(state))
            except ValueError:
                return False
    return True


def rows(database: Path, query: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(database)) as db:
        return list(db.execute(query).fetchall())


def test_a_store_opens_only_with_the_key_it_was_written_with(tmp_path: Path) -> None:
    key = AESGCMCipher.create_key()
    app = intake(tmp_path, key)
    case_id = submitted(app)
    app.close()

    with pytest.raises(StoreKeyError) as other:
        intake(tmp_path, AESGCMCipher.create_key())
    assert "KRING_CIPHER_KEY does not open the intake store" in str(other.value)
    assert "written with another key" in str(other.value) and "\n" not in str(other.value)
    with pytest.raises(StoreKeyError, match="KRING_CIPHER_KEY is not set"):
        intake(tmp_path)

    again = intake(tmp_path, key)
    assert again.get(case_id).central_persons == ["Johan"]
    again.close()


def test_a_store_written_before_the_record_existed_is_told_by_what_it_holds(
    tmp_path: Path,
) -> None:
    key = AESGCMCipher.create_key()
    app = intake(tmp_path, key)
    case_id = submitted(app)
    app.close()
    database = tmp_path / "intake.sqlite"
    with closing(sqlite3.connect(database)) as db, db:
        db.execute("DELETE FROM intake_store")  # as an earlier release left it

    with pytest.raises(StoreKeyError, match="written with another key"):
        intake(tmp_path, AESGCMCipher.create_key())
    with pytest.raises(StoreKeyError, match="is not set"):
        intake(tmp_path)
    again = intake(tmp_path, key)
    assert again.get(case_id).region == "Utrecht"
    again.close()
    assert rows(database, "SELECT name FROM intake_store") == [("cipher",)]


def test_a_store_written_without_a_key_is_encrypted_once_a_key_is_given(tmp_path: Path) -> None:
    app = intake(tmp_path)
    kept, erased = submitted(app), submitted(app)
    app.erase_case(erased, ErasureReason.RETENTION_ENDED, MANAGER)
    app.close()
    database = tmp_path / "intake.sqlite"
    plain_key = stored_case_key(database, "intake", str(kept))
    assert len(b64decode(plain_key)) == 32  # written without a service key: not wrapped
    unsealed = [s for (s,) in rows(database, "SELECT state FROM stored_events")]
    assert any(s.startswith(b"{") for s in unsealed)  # the erasure log, in plain JSON

    key = AESGCMCipher.create_key()
    encrypted = intake(tmp_path, key)
    assert encrypted.get(kept).central_persons == ["Johan"]
    with pytest.raises(CaseErasedError):
        encrypted.get(erased)
    assert [e.type for e in encrypted.history(erased)] == ["CaseErased"]
    encrypted.close()

    wrapped = stored_case_key(database, "intake", str(kept))
    assert AESGCMCipher.of_key(key).decrypt(b64decode(wrapped)).decode() == plain_key
    states = [s for (s,) in rows(database, "SELECT state FROM stored_events")]
    service_cipher = AESGCMCipher.of_key(key)
    # Every state outside a case key now opens with the service key (a sealed state may begin
    # with any byte, "{" among them: what proves it sealed is that the key opens it).
    outside = [s for s in states if not s.startswith(CASE_KEY_PREFIX)]
    assert outside and all(json.loads(service_cipher.decrypt(s)) for s in outside)
    # A case's events: under the service key inside the case key, nothing readable without both.
    case_cipher = AESGCMCipher.of_key(plain_key)
    sealed = [
        case_cipher.decrypt(s[len(CASE_KEY_PREFIX) :])
        for (s,) in rows(
            database, f"SELECT state FROM stored_events WHERE originator_id = '{kept.hex}'"
        )
    ]
    assert sealed and not any(b"Johan" in s for s in sealed)
    assert all(json.loads(service_cipher.decrypt(s)) for s in sealed)

    with pytest.raises(StoreKeyError, match="is not set"):
        intake(tmp_path)
    reopened = intake(tmp_path, key)  # encrypted once: opening again changes nothing
    assert reopened.get(kept).region == "Utrecht"
    reopened.close()


def test_the_tables_an_earlier_release_shared_are_taken_over(tmp_path: Path) -> None:
    app = intake(tmp_path)
    case_id = submitted(app)
    app.queries.save_checkpoint("intake", 3)
    app.close()
    database = tmp_path / "intake.sqlite"
    with closing(sqlite3.connect(database)) as db, db:  # the names of an earlier release
        db.execute("ALTER TABLE intake_case_keys RENAME TO kring_case_keys")
        db.execute("ALTER TABLE intake_relay RENAME TO kring_relay")

    again = intake(tmp_path)
    assert again.get(case_id).region == "Utrecht"
    assert again.queries.checkpoint("intake") == 3
    again.close()
    tables = {name for (name,) in rows(database, "SELECT name FROM sqlite_master")}
    assert {"intake_case_keys", "intake_relay", "intake_store"} <= tables
    assert not {"kring_case_keys", "kring_relay"} & tables


def test_store_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "intake.sqlite").touch(mode=0o644)  # as an earlier release left it
    data.chmod(0o755)
    (data / "intake.sqlite").chmod(0o644)
    app = intake(data, AESGCMCipher.create_key())
    submitted(app)
    files = sorted(data.iterdir())
    assert {f.name for f in files} >= {"intake.sqlite", "intake.sqlite-wal", "intake.sqlite-shm"}
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}
    app.close()


@pytest.mark.parametrize("service_key", [True, False], ids=["service-key", "no-service-key"])
def test_after_an_erasure_no_file_of_the_store_holds_the_case_key(
    tmp_path: Path, service_key: bool
) -> None:
    key = AESGCMCipher.create_key() if service_key else None
    app = intake(tmp_path, key)
    kept, erased = submitted(app), submitted(app)
    for _ in range(20):  # more pages, so the keys' page is not the only one in the WAL
        submitted(app)
    database = tmp_path / "intake.sqlite"
    needles = {
        str(case): key_forms(stored_case_key(database, "intake", str(case)), key)
        for case in (kept, erased)
    }
    before = files_holding(tmp_path, needles)
    assert str(erased) in before, "the scan would not find the key: it proves nothing"

    app.erase_case(erased, ErasureReason.REQUESTED_BY_PERSON, MANAGER)
    for _ in range(3):  # the store goes on being written
        submitted(app)

    after = files_holding(tmp_path, needles)
    assert str(erased) not in after, after
    assert str(kept) in after  # the same scan still finds a key that stands
    # Names are never in a file in the clear, erased or not.
    names = {name: text_forms(name) for name in ("Johan", "Ria", "grandmother")}
    assert files_holding(tmp_path, names) == {}
    app.close()
    assert str(erased) not in files_holding(tmp_path, needles)


def test_an_unknown_cipher_record_is_refused(tmp_path: Path) -> None:
    intake(tmp_path).close()
    with closing(sqlite3.connect(tmp_path / "intake.sqlite")) as db, db:
        db.execute("UPDATE intake_store SET value = 'rot13' WHERE name = 'cipher'")
    with pytest.raises(StoreKeyError):
        intake(tmp_path, AESGCMCipher.create_key())


def test_a_rotated_key_reads_both_until_rekeyed_then_the_old_one_can_go(tmp_path: Path) -> None:
    from shared.at_rest import RekeyError, RekeyProgress, rekey

    old, new = AESGCMCipher.create_key(), AESGCMCipher.create_key()
    database = tmp_path / "intake.sqlite"
    app = intake(tmp_path, old)
    kept, erased = submitted(app), submitted(app)
    app.take_snapshot(kept)
    app.erase_case(erased, ErasureReason.RETENTION_ENDED, MANAGER)
    app.close()

    # The new key alone: refused, by name, with what to do.
    with pytest.raises(StoreKeyError, match="KRING_CIPHER_KEY_FALLBACK until `kring rekey`"):
        intake(tmp_path, new)
    # The new key with the old as fallback: everything reads; new writes are under the new key.
    rotating = intake(tmp_path, new, fallback=old)
    assert rotating.get(kept).central_persons == ["Johan"]
    written_during = submitted(rotating)
    with pytest.raises(RekeyError, match="KRING_CIPHER_KEY_FALLBACK"):
        rekey(rotating.queries, AESGCMCipher.of_key(new))
    assert not sealed_under(database, new)

    seen: list[RekeyProgress] = []
    done = rekey(rotating.queries, rotating.mapper.cipher, seen.append, batch=3)
    assert done.done and done.looked_at == done.total and done.resealed > 0
    assert len(seen) > 3 and seen[-1].done  # batches, reported as they go
    assert [p.looked_at for p in seen] == sorted(p.looked_at for p in seen)
    again = rekey(rotating.queries, rotating.mapper.cipher)  # run twice: nothing left to do
    assert again.resealed == 0 and again.looked_at == done.looked_at
    rotating.close()
    assert sealed_under(database, new)

    # The old key is gone: the new one alone opens it all, the snapshot too.
    rotated = intake(tmp_path, new)
    assert rotated.get(kept).central_persons == ["Johan"]
    assert rotated.get(written_during).region == "Utrecht"
    assert rotated.snapshots is not None and list(rotated.snapshots.get(kept))
    with pytest.raises(CaseErasedError):
        rotated.get(erased)
    rotated.close()
    with pytest.raises(StoreKeyError, match="written with another key"):
        intake(tmp_path, old)


def test_a_store_encrypted_once_a_key_is_given_has_its_snapshots_sealed_too(
    tmp_path: Path,
) -> None:
    app = intake(tmp_path)
    case_id = submitted(app)
    app.take_snapshot(case_id)
    app.close()
    key = AESGCMCipher.create_key()
    encrypted = intake(tmp_path, key)
    assert encrypted.get(case_id).central_persons == ["Johan"]  # from its snapshot
    encrypted.close()
    assert sealed_under(tmp_path / "intake.sqlite", key)
