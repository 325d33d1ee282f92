"""The service key at rest: a store opens with the key it was written with, or not at all.

Each store records what it is written with (``<service>_store``, the row ``cipher``): ``none``,
or a check value sealed under the service key (``KRING_CIPHER_KEY``). At start, before anything
is read:

- written with a key, opened with another one or with none: the service stops with one line
  saying so (reading on would fail on every event, or write new events under the wrong key);
- written without a key and opened with one (a store from before ``kring run`` made keys, or
  an operator who adds a key): the store is encrypted once, in one transaction: every event's
  state is sealed under the service key (inside its case key, where it has one) and every case
  key is wrapped in it. Events of erased cases stay as they are: nobody can open them anyway;
- written without a key and opened without one: it stays so (the service logs that it is not
  encrypted at rest).

A store from before this record existed tells what it was written with by what it holds: a
case key is 32 bytes in base64 unwrapped, longer wrapped; an event's state is JSON unsealed.

**Rotation.** A service started with a new key and the old one as ``KRING_CIPHER_KEY_FALLBACK``
writes under the new key and reads under either (``shared.cipher.ServiceCipher``). ``rekey``
(``kring rekey SERVICE``) then seals what the store holds under the old key under the new one,
in batches, each its own transaction, while the service runs: every wrapped case key, every
event's and snapshot's state, and last the record, whose check value under the new key is what
lets the service start without the fallback. Until then a start without it is refused, by name.
"""

from __future__ import annotations

import json
import time
from base64 import b64decode, b64encode
from binascii import Error as Base64Error
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Cipher

from shared.cipher import AESGCMCipher, ServiceCipher
from shared.erasure import CASE_KEY_PREFIX
from shared.logging import get_logger
from shared.store import StoreConfigError, StoreQueries

log = get_logger(__name__)

RECORD = "cipher"
UNENCRYPTED = "none"
#: What ``_written_with`` finds besides: a store holding nothing yet, one sealed under a key
#: from before the record existed, one whose record holds a check value.
EMPTY, SEALED, CHECKED = "empty", "sealed", "checked"
CHECK_PREFIX = "check:"
CHECK_PLAINTEXT = b"kring: the service key of this store"
CASE_KEY_BYTES = 32


class StoreKeyError(StoreConfigError):
    """The store was written with another service key, or with one that is not given."""


def open_at_rest(queries: StoreQueries, cipher: Cipher | None) -> None:
    """Check (and where needed record, or apply) the store's service key. Call it in the
    schema lock, after the tables exist and before anything reads the store."""
    written, sample = _written_with(queries)
    if written == EMPTY or (written == UNENCRYPTED and cipher is None):
        _record(queries, UNENCRYPTED if cipher is None else _check_value(cipher))
        if cipher is None:
            log.warning("store.unencrypted", store=queries.where, hint="set KRING_CIPHER_KEY")
        return
    if written == UNENCRYPTED:
        assert cipher is not None
        _encrypt(queries, cipher)
        return
    if cipher is None:
        raise StoreKeyError(
            f"the {queries.service} store ({queries.where}) is encrypted and KRING_CIPHER_KEY is "
            "not set: start it with the key it was written with"
        )
    if sample is None or not _opens(cipher, sample):
        rotating = isinstance(cipher, ServiceCipher) and cipher.fallback is not None
        raise StoreKeyError(
            f"KRING_CIPHER_KEY does not open the {queries.service} store ({queries.where}): "
            "it was written with another key"
            + (
                " (nor does KRING_CIPHER_KEY_FALLBACK)"
                if rotating
                else "; in a rotation, give the key it replaces as KRING_CIPHER_KEY_FALLBACK "
                "until `kring rekey` has run"
            )
        )
    if written == SEALED:
        # Under the key that opened it: a store sealed under the fallback is recorded so, and
        # needs ``rekey`` (or the fallback) like any other.
        opened_by = cipher
        if isinstance(cipher, ServiceCipher) and cipher.fallback and not cipher.opens(sample):
            opened_by = cipher.fallback
        _record(queries, _check_value(opened_by))


def _written_with(queries: StoreQueries) -> tuple[str, bytes | None]:
    """(what the store was written with, something sealed under its key to try one on). A
    store without the record tells by what it holds."""
    recorded = queries.record(RECORD)
    if recorded == UNENCRYPTED:
        return UNENCRYPTED, None
    if recorded is not None:
        return CHECKED, _b64(recorded.removeprefix(CHECK_PREFIX))
    key, state = _evidence(queries)
    if key is not None:
        raw = _b64(key)
        if raw is not None and len(raw) == CASE_KEY_BYTES:
            return UNENCRYPTED, None
        return SEALED, raw
    if state is not None:
        try:
            json.loads(state)
        except ValueError:
            return SEALED, state
        return UNENCRYPTED, None
    return EMPTY, None  # nothing stored yet (or nothing readable without a case key)


def _evidence(queries: StoreQueries) -> tuple[str | None, bytes | None]:
    """A case key that was not shredded, and an event state not sealed under a case key."""
    sql, prefix = queries.sql, len(CASE_KEY_PREFIX)
    with queries.transaction(commit=False) as cursor:
        cursor.execute(
            sql(
                "SELECT key FROM {table} WHERE key IS NOT NULL LIMIT 1",
                table=queries.case_keys_table,
            )
        )
        row = cursor.fetchone()
        key = None if row is None else str(row["key"])
        cursor.execute(
            sql(
                "SELECT state FROM {table} WHERE substring(state from 1 for %s) <> %s LIMIT 1"
                if sql.postgres
                else "SELECT state FROM {table} WHERE substr(state, 1, %s) != %s LIMIT 1",
                table=queries.events_table,
            ),
            (prefix, CASE_KEY_PREFIX),
        )
        row = cursor.fetchone()
        state = None if row is None else bytes(row["state"])
    return key, state


def _encrypt(queries: StoreQueries, cipher: Cipher) -> None:
    """Seal a store written without a service key under one, in one transaction."""
    sql = queries.sql
    keys_table = queries.case_keys_table
    with queries.transaction(commit=True) as cursor:
        cursor.execute(
            sql("SELECT case_id, key FROM {table} WHERE key IS NOT NULL", table=keys_table)
        )
        case_keys = {str(row["case_id"]): str(row["key"]) for row in cursor.fetchall()}
        for case_id, key in case_keys.items():
            wrapped = b64encode(cipher.encrypt(key.encode())).decode()
            cursor.execute(
                sql("UPDATE {table} SET key = %s WHERE case_id = %s", table=keys_table),
                (wrapped, case_id),
            )
        sealed = 0
        for table in _state_tables(queries, cursor):
            cursor.execute(
                sql("SELECT originator_id, originator_version, state FROM {table}", table=table)
            )
            rows: list[Any] = cursor.fetchall()
            update = sql(_UPDATE_STATE, table=table)
            for row in rows:
                state = _sealed(bytes(row["state"]), row["originator_id"], case_keys, cipher)
                if state is not None:
                    cursor.execute(update, (state, row["originator_id"], row["originator_version"]))
                    sealed += 1
        queries.set_record_in(cursor, RECORD, _check_value(cipher))
    log.warning("store.encrypted", store=queries.where, events=sealed, case_keys=len(case_keys))


_UPDATE_STATE = "UPDATE {table} SET state = %s WHERE originator_id = %s AND originator_version = %s"


def _state_tables(queries: StoreQueries, cursor: Any) -> list[str]:
    """The tables whose states the mapper seals: the events', and the snapshots' once made."""
    snapshots = queries.snapshots_table
    return [queries.events_table, *([snapshots] if queries.exists_in(cursor, snapshots) else [])]


def _sealed(
    state: bytes, originator_id: Any, case_keys: dict[str, str], cipher: Cipher
) -> bytes | None:
    return _inside_case_key(state, originator_id, case_keys, cipher.encrypt)


def _inside_case_key(
    stored: bytes,
    originator_id: Any,
    case_keys: dict[str, str],
    change: Callable[[bytes], bytes | None],
) -> bytes | None:
    """``stored`` with ``change`` applied to what lies under the service key: inside the case's
    key where it has one. None where ``change`` changes nothing, or where the case was erased
    (nobody can open it, now or later)."""
    if not stored.startswith(CASE_KEY_PREFIX):
        return change(stored)
    key = case_keys.get(str(UUID(str(originator_id))))
    if key is None:
        return None
    case = AESGCMCipher.of_key(key)
    changed = change(case.decrypt(stored[len(CASE_KEY_PREFIX) :]))
    return None if changed is None else CASE_KEY_PREFIX + case.encrypt(changed)


def _record(queries: StoreQueries, value: str) -> None:
    with queries.transaction(commit=True) as cursor:
        queries.set_record_in(cursor, RECORD, value)


def _check_value(cipher: Cipher) -> str:
    return CHECK_PREFIX + b64encode(cipher.encrypt(CHECK_PLAINTEXT)).decode()


def _opens(cipher: Cipher, sealed: bytes) -> bool:
    try:
        cipher.decrypt(sealed)
    except ValueError:
        return False
    return True


def _b64(text: str) -> bytes | None:
    try:
        return b64decode(text, validate=True)
    except (Base64Error, ValueError):
        return None


# -- rotation -----------------------------------------------------------------------------
#: Rows read, sealed again and written per transaction: short enough not to hold the
#: service's writers up, long enough to go quickly.
REKEY_BATCH = 500


@dataclass
class RekeyProgress:
    """Where ``rekey`` is: what it looked at and what it sealed again, so far."""

    table: str = ""
    looked_at: int = 0
    resealed: int = 0
    total: int = 0
    seconds: float = 0.0
    done: bool = False


class RekeyError(StoreKeyError):
    """The store cannot be sealed under the new key as configured; the message says why."""


def rekey(
    queries: StoreQueries,
    cipher: Cipher | None,
    progress: Callable[[RekeyProgress], None] = lambda _: None,
    *,
    batch: int = REKEY_BATCH,
) -> RekeyProgress:
    """Seal everything ``queries``' store holds under the fallback key under the service key.

    Safe while the service runs: events and snapshots are never changed by it (only added), so
    a row is sealed again as it was read; a case key is written back only if it is still the one
    read (an erasure meanwhile wins). Interrupted, run it again: what is already under the new
    key is looked at and left. The record's check value is written last."""
    if not isinstance(cipher, ServiceCipher) or cipher.fallback is None:
        raise RekeyError(
            "a rekey seals the store under KRING_CIPHER_KEY what it holds under the key that "
            "one replaces: set both KRING_CIPHER_KEY and KRING_CIPHER_KEY_FALLBACK"
        )
    started = time.monotonic()
    state = RekeyProgress()

    def report(table: str) -> None:
        state.table, state.seconds = table, time.monotonic() - started
        progress(state)

    sql = queries.sql
    with queries.transaction(commit=False) as cursor:
        tables = _state_tables(queries, cursor)
        # What there is to look at, counted first (what is added meanwhile is under the new
        # key already), so the progress moves one way.
        keys = queries.case_keys_table
        counts = [
            sql("SELECT COUNT(*) AS n FROM {table} WHERE key IS NOT NULL", table=keys),
            *(sql("SELECT COUNT(*) AS n FROM {table}", table=name) for name in tables),
        ]
        for count in counts:
            cursor.execute(count)
            state.total += int(cursor.fetchone()["n"])
    case_keys = _rekey_case_keys(queries, cipher, state, report, batch)
    for table in tables:
        _rekey_states(queries, table, cipher, case_keys, state, report, batch)
    with queries.transaction(commit=True) as cursor:
        queries.set_record_in(cursor, RECORD, _check_value(cipher))
    state.done = True
    report("")
    log.warning(
        "store.rekeyed", store=queries.where, looked_at=state.looked_at, resealed=state.resealed
    )
    return state


def _rekey_case_keys(
    queries: StoreQueries,
    cipher: ServiceCipher,
    state: RekeyProgress,
    report: Callable[[str], None],
    batch: int,
) -> dict[str, str]:
    """Wrap every case key under the service key; return them all, unwrapped."""
    sql, table = queries.sql, queries.case_keys_table
    with queries.transaction(commit=False) as cursor:
        cursor.execute(sql("SELECT case_id, key FROM {table} WHERE key IS NOT NULL", table=table))
        wrapped = [(str(row["case_id"]), str(row["key"])) for row in cursor.fetchall()]
    # Compared with what was read: a key erased (NULL) meanwhile is never brought back.
    update = sql("UPDATE {table} SET key = %s WHERE case_id = %s AND key = %s", table=table)
    plain: dict[str, str] = {}
    for start in range(0, len(wrapped), batch):
        with queries.transaction(commit=True) as cursor:
            for case_id, key in wrapped[start : start + batch]:
                sealed = _b64(key) or b""
                try:
                    plain[case_id] = cipher.decrypt(sealed).decode()
                    again = cipher.reseal(sealed)
                except ValueError:
                    raise RekeyError(
                        f"the key of case {case_id} in {table} opens with neither "
                        "KRING_CIPHER_KEY nor KRING_CIPHER_KEY_FALLBACK"
                    ) from None
                state.looked_at += 1
                if again is not None:
                    cursor.execute(update, (b64encode(again).decode(), case_id, key))
                    state.resealed += 1
        report(table)
    return plain


def _rekey_states(
    queries: StoreQueries,
    table: str,
    cipher: ServiceCipher,
    case_keys: dict[str, str],
    state: RekeyProgress,
    report: Callable[[str], None],
    batch: int,
) -> None:
    """Seal every state of ``table`` (events, snapshots) under the service key, in batches in
    the table's key order."""
    sql = queries.sql
    page = sql(
        "SELECT originator_id, originator_version, state FROM {table} "
        "WHERE originator_id > %s OR (originator_id = %s AND originator_version > %s) "
        "ORDER BY originator_id, originator_version LIMIT %s",
        table=table,
    )
    update = sql(_UPDATE_STATE, table=table)
    after: tuple[Any, int] | None = None
    while True:
        with queries.transaction(commit=True) as cursor:
            if after is None:
                cursor.execute(
                    sql(
                        "SELECT originator_id, originator_version, state FROM {table} "
                        "ORDER BY originator_id, originator_version LIMIT %s",
                        table=table,
                    ),
                    (batch,),
                )
            else:
                cursor.execute(page, (after[0], after[0], after[1], batch))
            rows: list[Any] = cursor.fetchall()
            for row in rows:
                again = _resealed(bytes(row["state"]), row["originator_id"], case_keys, cipher)
                state.looked_at += 1
                if again is not None:
                    cursor.execute(update, (again, row["originator_id"], row["originator_version"]))
                    state.resealed += 1
        if rows:
            after = (rows[-1]["originator_id"], int(rows[-1]["originator_version"]))
        report(table)
        if len(rows) < batch:
            return


def _resealed(
    stored: bytes, originator_id: Any, case_keys: dict[str, str], cipher: ServiceCipher
) -> bytes | None:
    """``stored`` sealed under the service key (inside its case key, if it has one), or None
    if it already is, or if its case was erased."""
    try:
        return _inside_case_key(stored, originator_id, case_keys, cipher.reseal)
    except ValueError:
        raise RekeyError(
            f"a state of {originator_id} opens with neither KRING_CIPHER_KEY nor "
            "KRING_CIPHER_KEY_FALLBACK"
        ) from None
