"""``kring rekey SERVICE`` on a real PostgreSQL store, run as an operator runs it, while a
replica with the new key (and the old as fallback) goes on writing: afterwards the new key
alone opens everything, and what the operator gets wrong is one line and exit code 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from services.intake.app import IntakeApplication
from shared.at_rest import StoreKeyError
from shared.cipher import AESGCMCipher
from shared.erasure import CaseErasedError, ErasureReason
from shared.settings import ServiceSettings, StoreKind
from shared.store import eventsourcing_env
from tests.factories import CLARIFICATION, REGIONS, REQUEST_BODY, principal
from tests.servers import fresh_database

MANAGER = principal("rm", "regional_manager", regions=REGIONS)


@pytest.fixture
def database(postgres: str) -> Iterator[str]:
    with fresh_database(postgres) as url:
        yield url


def intake(url: str, key: str, fallback: str | None = None) -> IntakeApplication:
    settings = ServiceSettings(
        service_name="intake",
        store=StoreKind.POSTGRES,
        postgres_url=SecretStr(url),
        cipher_key=SecretStr(key),
        cipher_key_fallback=None if fallback is None else SecretStr(fallback),
    )
    return IntakeApplication(env=eventsourcing_env(settings))


def case(app: IntakeApplication) -> uuid.UUID:
    case_id = app.submit(MANAGER, **REQUEST_BODY, informational_talk=False)
    app.clarify(case_id, MANAGER, **CLARIFICATION)
    app.accept(case_id, MANAGER)
    return case_id


def kring_rekey(url: str, **keys: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRING_")}
    env |= {
        "KRING_STORE": "postgres",
        "KRING_POSTGRES_URL": url,
        **{f"KRING_{name.upper()}": value for name, value in keys.items()},
    }
    return subprocess.run(
        [sys.executable, "-m", "kring.cli", "rekey", "intake"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_kring_rekey_seals_a_live_postgres_store_under_the_new_key(database: str) -> None:
    old, new = AESGCMCipher.create_key(), AESGCMCipher.create_key()
    before = intake(database, old)
    cases = [case(before) for _ in range(40)]
    erased = cases.pop()
    before.erase_case(erased, ErasureReason.RETENTION_ENDED, MANAGER)
    before.take_snapshot(cases[0])
    before.close()

    # Every replica now writes under the new key, reads under either; one goes on writing
    # while the operator rekeys.
    replica = intake(database, new, fallback=old)
    written: list[uuid.UUID] = []
    stop = threading.Event()

    def keep_writing() -> None:
        while not stop.is_set():
            written.append(case(replica))

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        done = kring_rekey(database, cipher_key=new, cipher_key_fallback=old)
    finally:
        stop.set()
        writer.join()
    replica.close()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(
        r"intake: every row under the new key \([1-9][\d,]* sealed again\); "
        "KRING_CIPHER_KEY_FALLBACK can go",
        lines[-1],
    ), lines[-1]
    assert any("rows looked at (100 %)" in line for line in lines), lines
    assert written, "the replica wrote nothing while the store was rekeyed"
    assert not any("Johan" in line or old in line or new in line for line in lines)

    # The old key gone: the new one alone opens every case, the snapshot, those written during.
    after = intake(database, new)
    try:
        for case_id in [*cases, *written]:
            assert after.get(case_id).region == REQUEST_BODY["region"]
        assert after.snapshots is not None and list(after.snapshots.get(cases[0]))
        with pytest.raises(CaseErasedError):
            after.get(erased)
    finally:
        after.close()
    with pytest.raises(StoreKeyError, match="written with another key"):
        intake(database, old)
    again = kring_rekey(database, cipher_key=new, cipher_key_fallback=old)
    assert again.returncode == 0 and "(0 sealed again)" in again.stdout


def test_kring_rekey_without_both_keys_is_one_line_and_exit_code_2(database: str) -> None:
    old, new = AESGCMCipher.create_key(), AESGCMCipher.create_key()
    intake(database, old).close()
    for keys, says in (
        ({"cipher_key": new}, "does not open the intake store"),
        ({"cipher_key": old}, "set both KRING_CIPHER_KEY and KRING_CIPHER_KEY_FALLBACK"),
        ({"cipher_key_fallback": old}, "KRING_CIPHER_KEY_FALLBACK: Value error"),
        ({"cipher_key": new, "cipher_key_fallback": new}, "the same key as KRING_CIPHER_KEY"),
    ):
        answer = kring_rekey(database, **keys)
        assert answer.returncode == 2, (keys, answer.stderr)
        assert says in answer.stderr and answer.stderr.count("\n") == 1, answer.stderr
        assert "Traceback" not in answer.stderr and old not in answer.stderr
