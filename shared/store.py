"""The eventsourcing persistence choice, and the small queries eventsourcing lacks.

SQLite by default (one file per service under the data folder, readable by its owner only),
PostgreSQL when ``KRING_STORE=postgres``. Tracking is multi-row (one row per processed upstream
position), so "was this exact position processed?" is answered exactly: single-row tracking
answers yes for anything at or below the highest id seen. Beside eventsourcing's tables, each
store keeps the relay's checkpoint, the case keys (``shared.erasure``) and what the store was
written with (``shared.at_rest``), in tables named after the service: ``<service>_relay``,
``<service>_case_keys``, ``<service>_store``, and on PostgreSQL ``<service>_lease`` (which
replica runs the relay, consumers and timers: ``shared.lease``) (eventsourcing names its own
``<service>_events`` and ``<service>_tracking`` on PostgreSQL). So four services, or two
replicas of each, share one database and schema without sharing a row.

Schema changes are made by whichever process starts, under one lock per database
(``StoreQueries.schema_lock``: a PostgreSQL advisory lock), so any number of processes may start
at once against an empty database; the alternative, a migration step run once before the
services, would be one more thing for compose, Kubernetes and ``kring run`` to get in order.

PostgreSQL's client (psycopg, libpq) is imported only for a PostgreSQL store: on the SQLite
default it would cost each service a fifth of its memory for nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse
from uuid import UUID

from eventsourcing.persistence import (
    ApplicationRecorder,
    InterfaceError,
    OperationalError,
    PersistenceError,
)
from eventsourcing.sqlite import SQLiteDatastore

from shared import fence
from shared.logging import get_logger
from shared.settings import ServiceSettings, StoreKind

log = get_logger(__name__)

#: The tables every service shared before they were named after the service (see
#: ``StoreQueries.create_tables``: what is in them is taken over once).
LEGACY_CHECKPOINTS = "kring_relay"
LEGACY_CASE_KEYS = "kring_case_keys"
#: One advisory lock for every schema change of every Kring service in a database: the four
#: services' tables are their own, but eventsourcing's composite type (``stored_event_uuid``)
#: is one per schema, and its creation raced like the tables did.
SCHEMA_LOCK_KEY = 0x6B72696E67  # "kring"
SCHEMA_LOCK_SECONDS = 60
#: Store files: the owner reads and writes them, nobody else.
FILE_MODE = 0o600
FOLDER_MODE = 0o700
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


class StoreConfigError(ValueError):
    """The store cannot be opened as configured; the message says why in one line."""


#: What a store that cannot be reached raises: PostgreSQL away (or SQLite locked beyond its
#: timeout). Nothing was stored; the same request or message succeeds once it is back.
STORE_UNAVAILABLE: tuple[type[PersistenceError], ...] = (OperationalError, InterfaceError)


def case_keys_table(service: str) -> str:
    return f"{service}_case_keys"


def eventsourcing_env(settings: ServiceSettings) -> dict[str, str]:
    """The environment an eventsourcing ``Application`` is constructed with."""
    env: dict[str, str] = {"SINGLE_ROW_TRACKING": "f", "CREATE_TABLE": "y"}
    if settings.store is StoreKind.SQLITE:
        secure_store_files(settings.sqlite_path)
        env |= {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(settings.sqlite_path),
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    else:
        env |= {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            # eventsourcing's recorder without the shared insert function it would otherwise
            # create (and re-point at its own table) for every service in the schema.
            "PROCESS_RECORDER_TOPIC": "shared.postgres:KringPostgresProcessRecorder",
            **_postgres_env(settings),
        }
    if settings.cipher_key is not None:
        env |= {
            "CIPHER_TOPIC": "shared.cipher:ServiceCipher",
            "CIPHER_KEY": settings.cipher_key.get_secret_value(),
        }
        if settings.cipher_key_fallback is not None:
            env["CIPHER_KEY_FALLBACK"] = settings.cipher_key_fallback.get_secret_value()
    return env


def secure_store_files(database: Path) -> None:
    """The data folder 0700 and the store's files 0600, made so before SQLite creates them (it
    gives its ``-wal`` and ``-shm`` files the database file's mode) and set again on files an
    earlier release left readable by others."""
    folder = database.parent
    folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    _restrict(folder, FOLDER_MODE)
    if not database.exists():
        os.close(os.open(database, os.O_CREAT | os.O_WRONLY, FILE_MODE))
    for suffix in SQLITE_SUFFIXES:
        _restrict(Path(f"{database}{suffix}"), FILE_MODE)


def _restrict(path: Path, mode: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_IMODE(path.stat().st_mode) & ~mode:
            path.chmod(mode)


def _postgres_env(settings: ServiceSettings) -> dict[str, str]:
    if settings.postgres_url is None:
        raise StoreConfigError("KRING_STORE=postgres needs KRING_POSTGRES_URL")
    url = urlparse(settings.postgres_url.get_secret_value())
    query = parse_qs(url.query)
    try:
        reachable = bool(url.hostname or query.get("host")) and (url.port or 1) > 0
    except ValueError:  # a port that is not a number
        reachable = False
    if url.scheme not in ("postgresql", "postgres") or not url.path.strip("/") or not reachable:
        raise StoreConfigError(
            "KRING_POSTGRES_URL must look like postgresql://user:password@host:5432/dbname"
        )
    # ``?host=/run/postgresql`` names a unix-socket directory, as libpq allows.
    host = query["host"][0] if "host" in query else url.hostname or "127.0.0.1"
    env = {
        "POSTGRES_DBNAME": url.path.strip("/"),
        "POSTGRES_HOST": host,
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": unquote(url.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(url.password or ""),
        "POSTGRES_POOL_SIZE": "5",
        "POSTGRES_MAX_OVERFLOW": "5",
        "POSTGRES_PRE_PING": "y",
        # How long a call waits for a connection (eventsourcing's default, 30 s, times its ten
        # retries, held a request for minutes while the database was away).
        "POSTGRES_CONNECT_TIMEOUT": "5",
    }
    if settings.postgres_schema:
        env["POSTGRES_SCHEMA"] = settings.postgres_schema
    return env


class _Dialect:
    """One statement, written once with ``%s`` placeholders and ``{table}`` names, for the
    store's database: plain text with ``?`` for SQLite, composed psycopg SQL with
    schema-qualified names for PostgreSQL."""

    def __init__(self, datastore: Any) -> None:
        self.datastore = datastore
        self.postgres = not isinstance(datastore, SQLiteDatastore)
        if self.postgres:
            from eventsourcing.postgres import PostgresDatastore

            if not isinstance(datastore, PostgresDatastore):
                raise StoreConfigError(f"unsupported datastore {type(datastore).__name__}")

    def __call__(self, template: str, **tables: str) -> Any:
        if not self.postgres:
            return template.replace("%s", "?").format(**tables)
        from psycopg import sql

        schema = self.datastore.schema
        names = {key: sql.Identifier(schema, table) for key, table in tables.items()}
        return sql.SQL(template).format(**names)

    def where(self) -> str:
        """The store, as a person finds it (never with a password)."""
        if self.postgres:
            return f"PostgreSQL schema {self.datastore.schema}"
        return str(self.datastore.pool.db_name)


def zero_what_is_freed(datastore: Any) -> None:
    """SQLite: every connection overwrites what a change frees with zeros (``secure_delete``;
    some builds have it on by default, not all), so a shredded case key is not left in a page's
    free space or on the freelist. A no-op for PostgreSQL."""
    if not isinstance(datastore, SQLiteDatastore):
        return
    pool: Any = datastore.pool
    create = pool._create_connection

    def create_zeroing() -> Any:
        connection = create()
        connection.cursor().execute("PRAGMA secure_delete = ON")
        return connection

    pool._create_connection = create_zeroing


@contextlib.contextmanager
def schema_lock(datastore: Any) -> Iterator[None]:
    """Hold the database's schema lock for the block (PostgreSQL: a session advisory lock on a
    connection of its own, released at the end or when the process dies; SQLite: nothing, the
    file is one service's and SQLite serialises its own schema changes)."""
    sql = _Dialect(datastore)
    if not sql.postgres:
        yield
        return
    with datastore.get_connection() as connection:
        with connection.transaction():
            connection.execute(f"SET LOCAL lock_timeout = '{SCHEMA_LOCK_SECONDS}s'")
            connection.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
        try:
            yield
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))


class StoreQueries:
    """Exact tracking lookups, the relay checkpoint, the case keys and the store's own record,
    in the application's own database, in tables named after the service."""

    def __init__(self, recorder: ApplicationRecorder, service: str) -> None:
        datastore: Any = getattr(recorder, "datastore", None)
        sql = _Dialect(datastore)
        self.sql, self.service = sql, service
        self._datastore, self._postgres = datastore, sql.postgres
        self.events_table = str(getattr(recorder, "events_table_name", "stored_events"))
        #: eventsourcing names the snapshots' table as the events' ("<prefix>_snapshots").
        self.snapshots_table = self.events_table.removesuffix("events") + "snapshots"
        self.checkpoints_table = f"{service}_relay"
        self.case_keys_table = case_keys_table(service)
        self.store_table = f"{service}_store"
        self.lease_table = f"{service}_lease"
        tracking = str(getattr(recorder, "tracking_table_name", "tracking"))
        checkpoints, keys = {"table": self.checkpoints_table}, {"table": self.case_keys_table}
        self._has_tracking = sql(
            "SELECT 1 FROM {table} WHERE application_name = %s AND notification_id = %s",
            table=tracking,
        )
        self._get_checkpoint = sql("SELECT position FROM {table} WHERE origin = %s", **checkpoints)
        self._set_checkpoint = sql(
            "INSERT INTO {table} (origin, position) VALUES (%s, %s) "
            "ON CONFLICT (origin) DO UPDATE SET position = excluded.position",
            **checkpoints,
        )
        self._get_key = sql("SELECT key, erased_at FROM {table} WHERE case_id = %s", **keys)
        self._get_keys = sql(
            "SELECT case_id, key, erased_at FROM {table} WHERE case_id = ANY(%s)"
            if self._postgres
            else "SELECT case_id, key, erased_at FROM {table} "
            "WHERE case_id IN (SELECT value FROM json_each(%s))",
            **keys,
        )
        self._add_key = sql(
            "INSERT INTO {table} (case_id, key) VALUES (%s, %s) ON CONFLICT (case_id) DO NOTHING",
            **keys,
        )
        self._erase_key = sql(
            "INSERT INTO {table} (case_id, key, erased_at) VALUES (%s, NULL, %s) "
            "ON CONFLICT (case_id) DO UPDATE SET key = NULL, "
            "erased_at = COALESCE({table}.erased_at, excluded.erased_at)",
            **keys,
        )
        self._get_record = sql("SELECT value FROM {table} WHERE name = %s", table=self.store_table)
        self._set_record = sql(
            "INSERT INTO {table} (name, value) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            table=self.store_table,
        )

    @property
    def where(self) -> str:
        return self.sql.where()

    def transaction(self, *, commit: bool) -> Any:
        return self._datastore.transaction(commit=commit)

    # -- schema ------------------------------------------------------------------------
    def create_tables(self) -> None:
        """Create this service's tables (in the schema lock). What the shared tables of an
        earlier release hold is taken over once, as the service's own table is made: on SQLite
        (a file per service) they are renamed; on PostgreSQL every row of ``kring_case_keys``
        is copied (the four services used those keys alike, and a service erases the key of
        every case it hears erased, known to it or not) with this service's ``kring_relay``
        row. The shared tables stay for the operator to drop once all four have started."""
        sql, position = self.sql, "BIGINT" if self._postgres else "INTEGER"
        with self.transaction(commit=True) as cursor:
            for legacy, own in (
                (LEGACY_CHECKPOINTS, self.checkpoints_table),
                (LEGACY_CASE_KEYS, self.case_keys_table),
            ):
                legacy_only = self._exists(cursor, legacy) and not self._exists(cursor, own)
                if not self._postgres and legacy_only:
                    cursor.execute(sql("ALTER TABLE {old} RENAME TO {new}", old=legacy, new=own))
            take_over = (
                self._postgres
                and not self._exists(cursor, self.case_keys_table)
                and self._exists(cursor, LEGACY_CASE_KEYS)
            )
            cursor.execute(
                sql(
                    "CREATE TABLE IF NOT EXISTS {table} "
                    f"(origin TEXT PRIMARY KEY, position {position} NOT NULL)",
                    table=self.checkpoints_table,
                )
            )
            cursor.execute(
                sql(
                    "CREATE TABLE IF NOT EXISTS {table} "
                    "(case_id TEXT PRIMARY KEY, key TEXT, erased_at TEXT)",
                    table=self.case_keys_table,
                )
            )
            cursor.execute(
                sql(
                    "CREATE TABLE IF NOT EXISTS {table} "
                    "(name TEXT PRIMARY KEY, value TEXT NOT NULL)",
                    table=self.store_table,
                )
            )
            if self._postgres:  # one process per SQLite store: its lease is never written
                cursor.execute(
                    sql(
                        "CREATE TABLE IF NOT EXISTS {table} (name TEXT PRIMARY KEY, "
                        "holder TEXT NOT NULL, epoch BIGINT NOT NULL, "
                        "expires_at TIMESTAMPTZ NOT NULL)",
                        table=self.lease_table,
                    )
                )
            if take_over:
                cursor.execute(
                    sql(
                        "INSERT INTO {own} (case_id, key, erased_at) "
                        "SELECT case_id, key, erased_at FROM {legacy} ON CONFLICT DO NOTHING",
                        own=self.case_keys_table,
                        legacy=LEGACY_CASE_KEYS,
                    )
                )
                if self._exists(cursor, LEGACY_CHECKPOINTS):
                    cursor.execute(
                        sql(
                            "INSERT INTO {own} (origin, position) SELECT origin, position "
                            "FROM {legacy} WHERE origin = %s ON CONFLICT DO NOTHING",
                            own=self.checkpoints_table,
                            legacy=LEGACY_CHECKPOINTS,
                        ),
                        (self.service,),
                    )
                log.warning(
                    "store.shared_tables_taken_over",
                    tables=[LEGACY_CASE_KEYS, LEGACY_CHECKPOINTS],
                    into=[self.case_keys_table, self.checkpoints_table],
                )

    def _exists(self, cursor: Any, table: str) -> bool:
        if self._postgres:
            cursor.execute(
                "SELECT to_regclass(%s) IS NOT NULL AS found",
                (f'"{self._datastore.schema}"."{table}"',),
            )
            return bool(cursor.fetchone()["found"])
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
        return cursor.fetchone() is not None

    # -- the store's own record (shared.at_rest) -----------------------------------------
    def exists_in(self, cursor: Any, table: str) -> bool:
        """In the caller's transaction: whether ``table`` exists (in this store's schema)."""
        return self._exists(cursor, table)

    def record(self, name: str) -> str | None:
        with self.transaction(commit=False) as cursor:
            cursor.execute(self._get_record, (name,))
            row = cursor.fetchone()
        return None if row is None else str(row["value"])

    def set_record_in(self, cursor: Any, name: str, value: str) -> None:
        cursor.execute(self._set_record, (name, value))

    # -- health ------------------------------------------------------------------------
    def ping(self) -> None:
        """Raise one of ``STORE_UNAVAILABLE`` unless the store answers now."""
        with self.transaction(commit=False) as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()

    # -- tracking and the relay checkpoint ---------------------------------------------
    def has_tracking(self, origin: str, position: int) -> bool:
        with self.transaction(commit=False) as cursor:
            cursor.execute(self._has_tracking, (origin, position))
            return cursor.fetchone() is not None

    def checkpoint(self, origin: str) -> int:
        with self.transaction(commit=False) as cursor:
            cursor.execute(self._get_checkpoint, (origin,))
            row = cursor.fetchone()
        return 0 if row is None else int(row["position"])

    def save_checkpoint(self, origin: str, position: int) -> None:
        with self.transaction(commit=True) as cursor:
            fence.check_in(cursor)  # a relay that lost its lease moves nothing
            cursor.execute(self._set_checkpoint, (origin, position))

    # -- case keys ---------------------------------------------------------------------
    def case_key(self, case_id: UUID) -> tuple[str | None, bool] | None:
        """(wrapped key, erased) for the case, or None if it never had a key."""
        with self.transaction(commit=False) as cursor:
            cursor.execute(self._get_key, (str(case_id),))
            row = cursor.fetchone()
        return None if row is None else (row["key"], row["erased_at"] is not None)

    def case_keys(self, case_ids: list[UUID]) -> dict[UUID, tuple[str | None, bool]]:
        """``case_key`` for many cases in one query (those without a key are left out)."""
        if not case_ids:
            return {}
        ids = [str(case_id) for case_id in case_ids]
        with self.transaction(commit=False) as cursor:
            cursor.execute(self._get_keys, (ids if self._postgres else json.dumps(ids),))
            rows = cursor.fetchall()
        return {UUID(row["case_id"]): (row["key"], row["erased_at"] is not None) for row in rows}

    def add_case_key_in(self, cursor: Any, case_id: UUID, wrapped_key: str) -> str | None:
        """In the caller's transaction: store a key unless the case has one (or a tombstone)
        already, the first one wins; return the key that stands (None: erased)."""
        cursor.execute(self._add_key, (str(case_id), wrapped_key))
        cursor.execute(self._get_key, (str(case_id),))
        row = cursor.fetchone()
        return None if row is None else row["key"]

    def erase_case_key(self, case_id: UUID, at: datetime) -> None:
        with self.transaction(commit=True) as cursor:
            self.erase_case_key_in(cursor, case_id, at)

    def erase_case_key_in(self, cursor: Any, case_id: UUID, at: datetime) -> None:
        """In the caller's transaction: the case's key shredded, a tombstone left."""
        cursor.execute(self._erase_key, (str(case_id), at.isoformat()))

    def scrub(self, attempts: int = 50, pause: float = 0.1) -> bool:
        """After keys were shredded, make sure no file of the store still holds them. SQLite
        zeroes what a change frees (``secure_delete``, on every connection), but the WAL keeps
        the pages as they were until a checkpoint: a truncating one copies every page back and
        empties the WAL file. It needs a moment without readers, so it is tried again a little
        later while a read is in progress. Returns False if it could not finish (the next
        erasure, or the next start, tries again).

        PostgreSQL is not reached from here: the old row versions stay in the table until
        VACUUM, and in WAL segments, archives, backups and replicas for as long as those are
        kept (README, "Erasure on disk")."""
        if self._postgres:
            return True
        for _ in range(attempts):
            # Outside a transaction: a checkpoint cannot run inside one.
            with self._datastore.get_connection(commit=True) as connection:
                cursor = connection.cursor()
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                busy = cursor.fetchone()[0]
            if not busy:
                return True
            time.sleep(pause)
        log.warning("erasure.checkpoint_incomplete", store=self.where)
        return False
