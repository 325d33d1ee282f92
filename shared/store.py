"""The eventsourcing persistence choice, and the two small queries eventsourcing lacks.

SQLite by default (one file per service under the data folder), PostgreSQL when
``KRING_STORE=postgres``. Tracking is multi-row (one row per processed upstream position), so
"was this exact position processed?" can be answered exactly (DESIGN.md §7: single-row tracking
answers yes for anything at or below the highest id seen).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from psycopg import sql

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


class StoreQueries:
    """Exact tracking lookups and the relay checkpoint, in the application's own database."""

    def __init__(
        self, recorder: ApplicationRecorder, checkpoint_table: str = "kring_relay"
    ) -> None:
        datastore: Any = getattr(recorder, "datastore", None)
        self._datastore = datastore
        # Plain strings for SQLite, composed psycopg SQL for PostgreSQL.
        self._has_tracking: Any
        self._get_checkpoint: Any
        self._set_checkpoint: Any
        self._create: Any
        if isinstance(datastore, SQLiteDatastore):
            self._has_tracking = (
                "SELECT 1 FROM tracking WHERE application_name = ? AND notification_id = ?"
            )
            self._get_checkpoint = f"SELECT position FROM {checkpoint_table} WHERE origin = ?"  # noqa: S608
            self._set_checkpoint = (
                f"INSERT INTO {checkpoint_table} (origin, position) VALUES (?, ?) "  # noqa: S608
                "ON CONFLICT (origin) DO UPDATE SET position = excluded.position"
            )
            self._create = (
                f"CREATE TABLE IF NOT EXISTS {checkpoint_table} "
                "(origin TEXT PRIMARY KEY, position INTEGER NOT NULL)"
            )
        elif isinstance(datastore, PostgresDatastore):
            schema = sql.Identifier(datastore.schema)
            tracking = sql.Identifier(str(recorder.tracking_table_name))  # type: ignore[attr-defined]
            table = sql.Identifier(checkpoint_table)
            self._has_tracking = sql.SQL(
                "SELECT 1 FROM {}.{} WHERE application_name = %s AND notification_id = %s"
            ).format(schema, tracking)
            self._get_checkpoint = sql.SQL("SELECT position FROM {}.{} WHERE origin = %s").format(
                schema, table
            )
            self._set_checkpoint = sql.SQL(
                "INSERT INTO {}.{} (origin, position) VALUES (%s, %s) "
                "ON CONFLICT (origin) DO UPDATE SET position = excluded.position"
            ).format(schema, table)
            self._create = sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} "
                "(origin TEXT PRIMARY KEY, position BIGINT NOT NULL)"
            ).format(schema, table)
        else:
            raise StoreConfigError(f"unsupported recorder {type(recorder).__name__}")
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(self._create)

    def has_tracking(self, origin: str, position: int) -> bool:
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(self._has_tracking, (origin, position))
            return cursor.fetchone() is not None

    def checkpoint(self, origin: str) -> int:
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(self._get_checkpoint, (origin,))
            row = cursor.fetchone()
        if row is None:
            return 0
        return int(row["position"] if isinstance(row, dict) else row[0])

    def save_checkpoint(self, origin: str, position: int) -> None:
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(self._set_checkpoint, (origin, position))
