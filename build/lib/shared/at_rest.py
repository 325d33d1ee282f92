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
"""

from __future__ import annotations

import json
from base64 import b64decode, b64encode
from binascii import Error as Base64Error
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Cipher

from shared.cipher import AESGCMCipher
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
        raise StoreKeyError(
            f"KRING_CIPHER_KEY does not open the {queries.service} store ({queries.where}): "
            "it was written with another key"
        )
    if written == SEALED:
        _record(queries, _check_value(cipher))


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
    keys_table, events_table = queries.case_keys_table, queries.events_table
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
        cursor.execute(
            sql(
                "SELECT originator_id, originator_version, state FROM {table}",
                table=events_table,
            )
        )
        rows: list[Any] = cursor.fetchall()
        update = sql(
            "UPDATE {table} SET state = %s WHERE originator_id = %s AND originator_version = %s",
            table=events_table,
        )
        sealed = 0
        for row in rows:
            state = _sealed(bytes(row["state"]), row["originator_id"], case_keys, cipher)
            if state is not None:
                cursor.execute(update, (state, row["originator_id"], row["originator_version"]))
                sealed += 1
        queries.set_record_in(cursor, RECORD, _check_value(cipher))
    log.warning("store.encrypted", store=queries.where, events=sealed, case_keys=len(case_keys))


def _sealed(
    state: bytes, originator_id: Any, case_keys: dict[str, str], cipher: Cipher
) -> bytes | None:
    if not state.startswith(CASE_KEY_PREFIX):
        return cipher.encrypt(state)
    key = case_keys.get(str(UUID(str(originator_id))))
    if key is None:
        return None  # its case was erased: nobody can open it, now or later
    case = AESGCMCipher.of_key(key)
    inner = case.decrypt(state[len(CASE_KEY_PREFIX) :])
    return CASE_KEY_PREFIX + case.encrypt(cipher.encrypt(inner))


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
