"""The eventsourcing persistence choice, and the small queries eventsourcing lacks.

SQLite by default (one file per service under the data folder), PostgreSQL when
``KRING_STORE=postgres``. Tracking is multi-row (one row per processed upstream position), so
"was this exact position processed?" can be answered exactly (DESIGN.md §7: single-row tracking
answers yes for anything at or below the highest id seen). Beside eventsourcing's tables, each
store keeps the relay's checkpoint and the case keys (``shared.erasure``).

PostgreSQL's client (psycopg, libpq) is imported only for a PostgreSQL store: on the SQLite
default it would cost each service a fifth of its memory for nothing.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.sqlite import SQLiteDatastore

from shared.settings import ServiceSettings, StoreKind


class StoreConfigError(ValueError):
    pass


def eventsourcing_env(settings: ServiceSettings) -> dict[str, str]:
    """The environment an eventsourcing ``Application`` is constructed with."""
    env: dict[str, str] = {"SINGLE_ROW_TRACKING": "f", "CREATE_TABLE": "y"}
    if settings.store is StoreKind.SQLITE:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        env |= {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(settings.sqlite_path),
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    else:
        env |= {"PERSISTENCE_MODULE": "eventsourcing.postgres", **_postgres_env(settings)}
    if settings.cipher_key is not None:
        env |= {
            "CIPHER_TOPIC": "shared.cipher:AESGCMCipher",
            "CIPHER_KEY": settings.cipher_key.get_secret_value(),
        }
    return env


def _postgres_env(settings: ServiceSettings) -> dict[str, str]:
    if settings.postgres_url is None:
        raise StoreConfigError("KRING_STORE=postgres needs KRING_POSTGRES_URL")
    url = urlparse(settings.postgres_url.get_secret_value())
    if url.scheme not in ("postgresql", "postgres") or not url.path.strip("/"):
        raise StoreConfigError(
            "KRING_POSTGRES_URL must look like postgresql://user:password@host:5432/dbname"
        )
    query = parse_qs(url.query)
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
    }
    if settings.postgres_schema:
        env["POSTGRES_SCHEMA"] = settings.postgres_schema
    return env


class _Dialect:
    """One statement, written once with ``%s`` placeholders and ``{table}`` names, for the
    store's database: plain text with ``?`` for SQLite, composed psycopg SQL with
    schema-qualified names for PostgreSQL."""

    def __init__(self, recorder: ApplicationRecorder) -> None:
        datastore: Any = getattr(recorder, "datastore", None)
        self.datastore = datastore
        self.postgres = not isinstance(datastore, SQLiteDatastore)
        self.tracking = str(getattr(recorder, "tracking_table_name", "tracking"))
        if self.postgres:
            from eventsourcing.postgres import PostgresDatastore

            if not isinstance(datastore, PostgresDatastore):
                raise StoreConfigError(f"unsupported recorder {type(recorder).__name__}")

    def __call__(self, template: str, **tables: str) -> Any:
        if not self.postgres:
            return template.replace("%s", "?").format(**tables)
        from psycopg import sql

        schema = self.datastore.schema
        names = {key: sql.Identifier(schema, table) for key, table in tables.items()}
        return sql.SQL(template).format(**names)


class StoreQueries:
    """Exact tracking lookups, the relay checkpoint and the case keys, in the application's own
    database."""

    CHECKPOINTS = "kring_relay"
    CASE_KEYS = "kring_case_keys"

    def __init__(self, recorder: ApplicationRecorder) -> None:
        sql = _Dialect(recorder)
        self._datastore, self._postgres = sql.datastore, sql.postgres
        checkpoints, keys = {"table": self.CHECKPOINTS}, {"table": self.CASE_KEYS}
        self._has_tracking = sql(
            "SELECT 1 FROM {table} WHERE application_name = %s AND notification_id = %s",
            table=sql.tracking,
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
        position = "BIGINT" if self._postgres else "INTEGER"
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(
                sql(
                    "CREATE TABLE IF NOT EXISTS {table} "
                    f"(origin TEXT PRIMARY KEY, position {position} NOT NULL)",
                    **checkpoints,
                )
            )
            cursor.execute(
                sql(
                    "CREATE TABLE IF NOT EXISTS {table} "
                    "(case_id TEXT PRIMARY KEY, key TEXT, erased_at TEXT)",
                    **keys,
                )
            )

    # -- tracking and the relay checkpoint ---------------------------------------------
    def has_tracking(self, origin: str, position: int) -> bool:
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(self._has_tracking, (origin, position))
            return cursor.fetchone() is not None

    def checkpoint(self, origin: str) -> int:
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(self._get_checkpoint, (origin,))
            row = cursor.fetchone()
        return 0 if row is None else int(row["position"])

    def save_checkpoint(self, origin: str, position: int) -> None:
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(self._set_checkpoint, (origin, position))

    # -- case keys ---------------------------------------------------------------------
    def case_key(self, case_id: UUID) -> tuple[str | None, bool] | None:
        """(wrapped key, erased) for the case, or None if it never had a key."""
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(self._get_key, (str(case_id),))
            row = cursor.fetchone()
        return None if row is None else (row["key"], row["erased_at"] is not None)

    def case_keys(self, case_ids: list[UUID]) -> dict[UUID, tuple[str | None, bool]]:
        """``case_key`` for many cases in one query (those without a key are left out)."""
        if not case_ids:
            return {}
        ids = [str(case_id) for case_id in case_ids]
        with self._datastore.transaction(commit=False) as cursor:
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
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(self._erase_key, (str(case_id), at.isoformat()))
