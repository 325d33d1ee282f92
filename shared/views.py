"""Read models that persist: a service's lists as tables in its own database, kept from its own
notification log, with the position they reached recorded in the same transaction as the rows.

eventsourcing has no queries, so each service projects what its lists need (``views.py`` in each
service) into tables of its store, indexed for the filters its API offers. A read first brings
the tables up to the end of the log (usually one query that finds nothing new), so a list never
lags what was stored, in this process or in another replica on the same database: the tables,
the log and the position are shared, not the process's memory. A start resumes from the
position, never from the beginning; a background job keeps the tables close behind the log, so
a read rarely has anything to apply itself.

**Two replicas on one database.** Every writer of a read model first moves its position row
from the position it read to the one it reaches (``UPDATE … WHERE position = <read>``), in the
transaction that writes the rows: one of two replicas catching up at once wins, the other finds
the row moved, throws its batch away and reads on from the new position. So each notification is
applied once, whoever applies it. (On PostgreSQL the row lock serialises them; on SQLite the
database's one write lock does.) Notification ids commit in order on both stores (eventsourcing
locks the events table on PostgreSQL), so following the log never passes over a gap that fills
later.

**Rebuilding** (``kring rebuild SERVICE``) builds a new *generation* of the tables beside the
live one, from the first notification, in batches that each record their own position: an
interrupted rebuild resumes where it stopped and ends with the same rows. The live tables serve
reads meanwhile. At the end, in one transaction holding the live position, the new generation is
caught up to the end of the log and becomes the live one; the old tables are dropped a moment
later. Tables are named ``<service>_v<generation>_<table>``.

**Erasure.** An erased case's events cannot be decoded, so they never reach a table; the
erasure itself (``ErasureLog.CaseErased``, under the service's key) removes every row of the
case and records the case in the model's own ``erased`` table, so nothing stored after it
(intake closes a request in the erasure's own transaction) brings a row back. Read models hold
no personal data: ids, stages, times, counts, regions and coordinator ids, as the stream does.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from uuid import UUID

from eventsourcing.persistence import Notification, OperationalError, PersistenceError
from eventsourcing.utils import get_topic

from shared.access import Rule, Scope
from shared.erasure import CaseErasedError, ErasureLog
from shared.errors import InvalidFieldError
from shared.identity import Principal, fold
from shared.logging import get_logger
from shared.store import schema_lock

if TYPE_CHECKING:
    from shared.application import KringApplication

log = get_logger(__name__)

Kind = Literal["text", "int", "bool", "uuid", "time", "date", "json"]
ERASED_TOPIC = get_topic(ErasureLog.CaseErased)
#: Pages: ``?limit=`` defaults to this, and may not exceed the maximum (422 beyond it).
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
CURSOR_FORMAT = 1


# -- tables ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind = "text"
    #: Text read back as a member of this enum (a stage).
    values: type[Enum] | None = None


def columns(*specs: str | Column) -> tuple[Column, ...]:
    """``"model"``, ``"seq:int"``, ``"case_id:uuid"`` …: a table's columns in one line each."""
    made = []
    for spec in specs:
        if isinstance(spec, Column):
            made.append(spec)
            continue
        name, _, kind = spec.partition(":")
        made.append(Column(name, kind or "text"))  # type: ignore[arg-type]
    return tuple(made)


@dataclass(frozen=True)
class Table:
    """One table of a read model: its columns, its key, and an index per filter it serves."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()
    #: Keep how many rows there are of each combination of these columns (in the table
    #: ``<name>_counts``): a list's total, for filters on them alone, without counting rows.
    counted_by: tuple[str, ...] = ()

    @property
    def counts(self) -> Table | None:
        if not self.counted_by:
            return None
        return Table(
            f"{self.name}_counts",
            (*(Column(c) for c in self.counted_by), Column("n", "int")),
            key=self.counted_by,
        )

    def kind(self, column: str) -> Kind:
        for c in self.columns:
            if c.name == column:
                return c.kind
        raise KeyError(f"{self.name} has no column {column}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


#: Every read model's record of the cases erased (see the module's docstring).
ERASED = Table("erased", columns("case_id:uuid", "seq:int"), key=("case_id",))


def to_db(kind: Kind, value: Any) -> Any:
    if value is None:
        return None
    if kind == "uuid":
        return str(value)
    if kind == "time":
        # One fixed form in UTC, so text order is time order (and an index serves a range).
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if kind == "date":
        return value.isoformat()
    if kind == "json":
        return json.dumps(value, sort_keys=True, default=str)
    if kind == "bool":
        return 1 if value else 0
    if kind == "int":
        return int(value)
    return str(value)


def from_db(kind: Kind, value: Any) -> Any:
    if value is None:
        return None
    if kind == "uuid":
        return UUID(str(value))
    if kind == "time":
        return datetime.fromisoformat(str(value))
    if kind == "date":
        return date.fromisoformat(str(value))
    if kind == "json":
        return json.loads(value)
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return int(value)
    return value


# -- pages -------------------------------------------------------------------------------------
class InvalidCursorError(InvalidFieldError):
    """``?after=`` is not a cursor this list gave: 422 naming it."""

    def __init__(self, message: str) -> None:
        super().__init__(("query", "after"), message)


@dataclass(frozen=True)
class PageRequest:
    limit: int = DEFAULT_LIMIT
    #: The cursor of the page before (opaque to clients), or None for the first page.
    after: str | None = None


@dataclass
class Page:
    items: list[dict[str, Any]]
    #: The cursor of the next page, or None if this is the last.
    next: str | None = None
    #: How many rows the list holds in all (for this caller and these filters).
    total: int | None = None


def _digest(list_id: str, filters: Mapping[str, Any]) -> str:
    text = json.dumps([list_id, {k: v for k, v in filters.items() if v is not None}], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_cursor(list_id: str, filters: Mapping[str, Any], key: Sequence[Any]) -> str:
    """A cursor names the list it came from (and its filters) and the last row's sort key."""
    body = json.dumps([CURSOR_FORMAT, _digest(list_id, filters), [to_json(v) for v in key]])
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, list_id: str, filters: Mapping[str, Any]) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, digest, key = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise InvalidCursorError("not a cursor: use the 'next' of the page before") from None
    if version != CURSOR_FORMAT or not isinstance(key, list):
        raise InvalidCursorError("not a cursor: use the 'next' of the page before")
    if digest != _digest(list_id, filters):
        raise InvalidCursorError(
            "this cursor belongs to another list (another endpoint or other filters)"
        )
    return key


def to_json(value: Any) -> Any:
    return value if isinstance(value, int | str) or value is None else str(value)


# -- who may see which rows, as SQL --------------------------------------------------------------
@dataclass(frozen=True)
class Clause:
    """A piece of a WHERE clause, with ``%s`` for each parameter and ``{table}`` names."""

    sql: str
    params: tuple[Any, ...] = ()


def all_of(clauses: Iterable[Clause | None]) -> Clause:
    given = [c for c in clauses if c is not None]
    if not given:
        return Clause("1 = 1")
    return Clause(
        " AND ".join(f"({c.sql})" for c in given), tuple(p for c in given for p in c.params)
    )


def any_of(clauses: Iterable[Clause]) -> Clause:
    given = list(clauses)
    if not given:
        return Clause("1 = 0")
    return Clause(
        " OR ".join(f"({c.sql})" for c in given), tuple(p for c in given for p in c.params)
    )


# -- the read model ------------------------------------------------------------------------------
class ViewsBehindError(RuntimeError):
    """The read model is too far behind the log to be brought up to date inside a request (a
    first start on a long history, a new version of its tables): 503 while it is built."""


class _LostError(Exception):
    """Another process moved the position first: this batch is theirs."""


@dataclass(frozen=True)
class Progress:
    #: The position reached, and the log's last when the rebuild began.
    position: int
    end: int
    applied: int
    seconds: float


@dataclass
class _Meta:
    generation: int
    position: int


class Writer:
    """The rows of one generation, inside the transaction that moves its position."""

    def __init__(self, model: ReadModel, cursor: Any, generation: int) -> None:
        self.model, self.cursor, self.generation = model, cursor, generation

    def insert(self, table: str, **values: Any) -> None:
        """Insert the row, or replace the values given where its key is taken."""
        t = self.model.table(table)
        if t.counted_by:
            old = self.one(table, **{k: values[k] for k in t.key})
            if old is not None:
                self._count(t, old, -1)
            self._count(t, (old or {}) | values, +1)
        names = tuple(values)
        statement = self.model.statement(self.generation, "upsert", table, names)
        self.cursor.execute(statement, [to_db(t.kind(n), values[n]) for n in names])

    def update(self, table: str, where: Mapping[str, Any], **values: Any) -> None:
        t = self.model.table(table)
        if set(t.counted_by) & set(values):
            for old in self.rows(table, **where):
                self._count(t, old, -1)
                self._count(t, old | values, +1)
        names, keys = tuple(values), tuple(where)
        statement = self.model.statement(self.generation, "update", table, names, keys)
        params = [to_db(t.kind(n), values[n]) for n in names]
        self.cursor.execute(statement, params + [to_db(t.kind(k), where[k]) for k in keys])

    def delete(self, table: str, **where: Any) -> None:
        t = self.model.table(table)
        if t.counted_by:
            for old in self.rows(table, **where):
                self._count(t, old, -1)
        keys = tuple(where)
        statement = self.model.statement(self.generation, "delete", table, (), keys)
        self.cursor.execute(statement, [to_db(t.kind(k), where[k]) for k in keys])

    def _count(self, table: Table, row: Mapping[str, Any], delta: int) -> None:
        counts = table.counts
        assert counts is not None
        group = [_group_value(row.get(c)) for c in table.counted_by]
        key = ", ".join(table.counted_by)
        self.cursor.execute(
            self.model.compose(
                self.generation,
                f"INSERT INTO {{{counts.name}}} ({key}, n) VALUES "
                f"({', '.join('%s' for _ in group)}, %s) "
                f"ON CONFLICT ({key}) DO UPDATE SET n = {{{counts.name}}}.n + excluded.n",
            ),
            [*group, delta],
        )
        if delta < 0:  # a combination no row has any more leaves no row behind
            where = " AND ".join(f"{c} = %s" for c in table.counted_by)
            self.cursor.execute(
                self.model.compose(
                    self.generation, f"DELETE FROM {{{counts.name}}} WHERE {where} AND n = 0"
                ),
                group,
            )

    def rows(self, table: str, **where: Any) -> list[dict[str, Any]]:
        t = self.model.table(table)
        keys = tuple(where)
        statement = self.model.statement(self.generation, "select", table, (), keys)
        self.cursor.execute(statement, [to_db(t.kind(k), where[k]) for k in keys])
        return [self.model.row(t, r) for r in self.cursor.fetchall()]

    def one(self, table: str, **where: Any) -> dict[str, Any] | None:
        found = self.rows(table, **where)
        return found[0] if found else None


class ReadModel:
    """A service's read model. Subclasses declare ``tables``, the event classes they apply
    (``handles``) and ``apply``; they bump ``version`` whenever their tables change (a start
    with a new version builds its tables anew, beside the old ones)."""

    version: ClassVar[int] = 1
    tables: ClassVar[tuple[Table, ...]] = ()
    handles: ClassVar[tuple[type[Any], ...]] = ()
    batch_size: ClassVar[int] = 500
    #: A read brings the tables up to date itself when at most this many notifications are
    #: new; further behind, it is refused (503) while the background job catches up.
    read_backlog: ClassVar[int] = 20_000

    def __init__(self, app: KringApplication) -> None:
        self.app = app
        self.service = app.name
        queries = app.queries
        self.sql, self.postgres = queries.sql, queries.sql.postgres
        self._transaction = queries.transaction
        self._datastore: Any = getattr(app.recorder, "datastore", None)
        self.meta_table = f"{self.service}_views"
        self.live_name, self.build_name = f"v{self.version}", f"v{self.version}.rebuild"
        self._tables = {t.name: t for t in (*self.tables, ERASED)}
        for table in self.tables:
            if table.counts is not None:
                self._tables[table.counts.name] = table.counts
        self._topics = {get_topic(c) for c in self.handles} | {ERASED_TOPIC}
        self._statements: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()
        #: Notifications this process read from the log for the read model (tests, metrics):
        #: a restart that resumed reads only what is new.
        self.notifications_read = 0
        #: How far behind the log the live tables were when last looked at (readiness).
        self.lag = 0
        self._wake: Callable[[], None] | None = None
        app.on_stored(self._stored)
        with schema_lock(self._datastore):
            self._open()

    # -- what a service's read model says ------------------------------------------------------
    def apply(self, event: Any, position: int, w: Writer) -> None:
        """Apply one of the service's own events (one of ``handles``) to the tables."""
        raise NotImplementedError

    def case_of(self, event: Any) -> UUID | None:
        """The case an event belongs to (its aggregate's id, unless a service says otherwise)."""
        originator: Any = event.originator_id
        return originator if isinstance(originator, UUID) else None

    def forget(self, case_id: UUID, w: Writer) -> None:
        """An erased case leaves every table that has a ``case_id`` column."""
        for table in self.tables:
            if "case_id" in table.names:
                w.delete(table.name, case_id=case_id)

    # -- tables and statements -----------------------------------------------------------------
    def table(self, name: str) -> Table:
        return self._tables[name]

    def table_name(self, generation: int, table: str) -> str:
        return f"{self.service}_v{generation}_{table}"

    def compose(self, generation: int, template: str) -> Any:
        """A statement with ``{table}`` placeholders naming this generation's tables."""
        cached = self._statements.get(("compose", generation, template))
        if cached is None:
            names = {t: self.table_name(generation, t) for t in self._tables}
            cached = self.sql(template, **names)
            self._statements[("compose", generation, template)] = cached
        return cached

    def statement(
        self,
        generation: int,
        op: str,
        table: str,
        names: tuple[str, ...] = (),
        keys: tuple[str, ...] = (),
    ) -> Any:
        cache_key = (generation, op, table, names, keys)
        cached = self._statements.get(cache_key)
        if cached is not None:
            return cached
        t = self.table(table)
        where = " AND ".join(f"{k} = %s" for k in keys) or "1 = 1"
        if op == "upsert":
            update = ", ".join(f"{n} = excluded.{n}" for n in names if n not in t.key)
            conflict = f"DO UPDATE SET {update}" if update else "DO NOTHING"
            template = (
                f"INSERT INTO {{{table}}} ({', '.join(names)}) "
                f"VALUES ({', '.join('%s' for _ in names)}) "
                f"ON CONFLICT ({', '.join(t.key)}) {conflict}"
            )
        elif op == "update":
            sets = ", ".join(f"{n} = %s" for n in names)
            template = f"UPDATE {{{table}}} SET {sets} WHERE {where}"
        elif op == "delete":
            template = f"DELETE FROM {{{table}}} WHERE {where}"
        else:
            template = (
                f"SELECT {', '.join(t.names)} FROM {{{table}}} WHERE {where} "
                f"ORDER BY {', '.join(t.key)}"
            )
        composed = self.compose(generation, template)
        self._statements[cache_key] = composed
        return composed

    @staticmethod
    def row(table: Table, found: Any) -> dict[str, Any]:
        row = {c.name: from_db(c.kind, found[c.name]) for c in table.columns}
        for c in table.columns:
            if c.values is not None and row[c.name] is not None:
                row[c.name] = c.values(row[c.name])
        return row

    def in_list(self, column: str, values: Sequence[Any]) -> Clause:
        """``column`` is one of ``values``, as one parameter whatever their number (one value:
        an equality, which an index on the column and the list's order serves whole)."""
        if len(values) == 1:
            return Clause(f"{column} = %s", (values[0],))
        if self.postgres:
            return Clause(f"{column} = ANY(%s)", (list(values),))
        return Clause(f"{column} IN (SELECT value FROM json_each(%s))", (json.dumps(values),))

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Any]:
        """A write transaction. SQLite: ``BEGIN IMMEDIATE``, so the database's write lock is
        taken (waiting as long as the store's lock timeout) before anything is read: a deferred
        transaction that read first cannot take it once another process wrote meanwhile."""
        if self.postgres:
            with self._transaction(commit=True) as cursor:
                yield cursor
            return
        import sqlite3

        with self._datastore.get_connection(commit=True) as connection:
            cursor = connection.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                raise OperationalError(error) from error
            try:
                yield cursor
            except BaseException:
                connection.rollback()
                raise
            try:
                connection.commit()
            except sqlite3.OperationalError as error:
                raise OperationalError(error) from error

    # -- the meta row and the generations --------------------------------------------------------
    def _open(self) -> None:
        """In the schema lock: the meta table, and the live generation's tables (a first start
        makes them empty, at position 0: the background job and reads fill them)."""
        big = "BIGINT" if self.postgres else "INTEGER"
        with self._writing() as cursor:
            cursor.execute(
                self.sql(
                    "CREATE TABLE IF NOT EXISTS {meta} (name TEXT PRIMARY KEY, "
                    f"generation {big} NOT NULL, position {big} NOT NULL)",
                    meta=self.meta_table,
                )
            )
            live = self._meta_in(cursor, self.live_name)
            if live is None:
                generation = self._next_generation(cursor)
                self._create_generation(cursor, generation)
                cursor.execute(
                    self.sql(
                        "INSERT INTO {meta} (name, generation, position) VALUES (%s, %s, 0)",
                        meta=self.meta_table,
                    ),
                    (self.live_name, generation),
                )
            else:
                self._create_generation(cursor, live.generation, drop_first=False)

    def _meta_in(self, cursor: Any, name: str) -> _Meta | None:
        cursor.execute(
            self.sql(
                "SELECT generation, position FROM {meta} WHERE name = %s", meta=self.meta_table
            ),
            (name,),
        )
        found = cursor.fetchone()
        return None if found is None else _Meta(int(found["generation"]), int(found["position"]))

    def _meta(self, name: str) -> _Meta | None:
        with self._transaction(commit=False) as cursor:
            return self._meta_in(cursor, name)

    def _next_generation(self, cursor: Any) -> int:
        cursor.execute(self.sql("SELECT MAX(generation) AS g FROM {meta}", meta=self.meta_table))
        found = cursor.fetchone()
        highest = found["g"] if found is not None else None
        return 1 + max(int(highest or 0), *self._generations_on_disk(cursor), 0)

    def _generations_on_disk(self, cursor: Any) -> list[int]:
        prefix = f"{self.service}_v"
        if self.postgres:
            cursor.execute(
                "SELECT table_name AS name FROM information_schema.tables "
                "WHERE table_schema = %s AND table_name LIKE %s",
                (self._datastore.schema, f"{prefix}%"),
            )
        else:
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ?",
                (f"{prefix}%",),
            )
        found = set()
        for row in cursor.fetchall():
            number = str(row["name"])[len(prefix) :].partition("_")[0]
            if number.isdigit():
                found.add(int(number))
        return sorted(found)

    def _create_generation(self, cursor: Any, generation: int, *, drop_first: bool = True) -> None:
        if drop_first:
            self._drop_generation_in(cursor, generation)
        for table in self._tables.values():
            name = self.table_name(generation, table.name)
            cols = ", ".join(f"{c.name} {self._sql_type(c.kind)}" for c in table.columns)
            key = ", ".join(table.key)
            cursor.execute(
                self.sql(f"CREATE TABLE IF NOT EXISTS {{t}} ({cols}, PRIMARY KEY ({key}))", t=name)
            )
            for index in table.indexes:
                index_name = f"{name}_{'_'.join(index)}"
                cursor.execute(
                    self.sql(
                        f"CREATE INDEX IF NOT EXISTS {{i}} ON {{t}} ({', '.join(index)})",
                        i=index_name,
                        t=name,
                    )
                    if not self.postgres
                    else self._pg_index(index_name, name, index)
                )

    def _pg_index(self, index_name: str, table: str, index: tuple[str, ...]) -> Any:
        from psycopg import sql

        return sql.SQL("CREATE INDEX IF NOT EXISTS {i} ON {t} ({c})").format(
            i=sql.Identifier(index_name),  # an index lives in its table's schema
            t=sql.Identifier(self._datastore.schema, table),
            c=sql.SQL(", ").join(sql.Identifier(c) for c in index),
        )

    def _sql_type(self, kind: Kind) -> str:
        if kind in ("int", "bool"):
            return "BIGINT" if self.postgres else "INTEGER"
        return "TEXT"

    def _drop_generation_in(self, cursor: Any, generation: int) -> None:
        for table in self._tables.values():
            cursor.execute(
                self.sql("DROP TABLE IF EXISTS {t}", t=self.table_name(generation, table.name))
            )

    def drop_unused(self) -> list[int]:
        """Drop the tables of every generation no meta row names (what a rebuild replaced, one
        an interrupted build left). Returns the generations dropped."""
        with schema_lock(self._datastore), self._writing() as cursor:
            cursor.execute(self.sql("SELECT generation FROM {meta}", meta=self.meta_table))
            used = {int(r["generation"]) for r in cursor.fetchall()}
            unused = [g for g in self._generations_on_disk(cursor) if g not in used]
            for generation in unused:
                self._drop_generation_in(cursor, generation)
        return unused

    # -- following the log ------------------------------------------------------------------------
    def catch_up(self, *, for_read: bool = False) -> int:
        """Bring the live tables to the end of the log; return how many notifications were
        applied here. ``for_read``: refuse (``ViewsBehindError``) rather than apply a backlog
        longer than ``read_backlog`` inside a request."""
        with self._lock:
            return self._advance(self.live_name, backlog=self.read_backlog if for_read else None)

    def behind(self) -> int:
        """How many notifications the live tables are behind the log (0: up to date)."""
        meta = self._meta(self.live_name)
        end = self.app.recorder.max_notification_id() or 0
        self.lag = max(0, end - (meta.position if meta else 0))
        return self.lag

    def not_ready(self) -> list[str]:
        """Why the read model makes the service not ready: too far behind for a read to bring
        it up to date (a first start on a long history). Reads nothing: for the probe."""
        if self.lag > self.read_backlog:
            return [f"the read model is catching up ({self.lag} events behind the log)"]
        return []

    def _advance(
        self,
        name: str,
        *,
        backlog: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        applied = 0
        checked = backlog is None
        while True:
            meta = self._meta(name)
            if meta is None:
                return applied
            notifications = self.app.recorder.select_notifications(
                start=meta.position, limit=self.batch_size, inclusive_of_start=False
            )
            if not notifications:
                return applied
            if not checked and len(notifications) == self.batch_size:
                end = self.app.recorder.max_notification_id() or 0
                if end - meta.position > (backlog or 0):
                    raise ViewsBehindError(
                        f"the {self.service} read model is {end - meta.position} events behind"
                        " its log and is being brought up to date; try again shortly"
                    )
            checked = True
            self.notifications_read += len(notifications)
            events = self._decode(notifications)
            try:
                with self._writing() as cursor:
                    self._move(cursor, name, meta, notifications[-1].id)
                    self._apply_all(Writer(self, cursor, meta.generation), events)
            except _LostError:
                continue
            applied += len(notifications)
            if progress is not None:
                progress(notifications[-1].id, len(notifications))

    def _move(self, cursor: Any, name: str, meta: _Meta, to: int) -> None:
        cursor.execute(
            self.sql(
                "UPDATE {meta} SET position = %s "
                "WHERE name = %s AND generation = %s AND position = %s",
                meta=self.meta_table,
            ),
            (to, name, meta.generation, meta.position),
        )
        if _rowcount(cursor) != 1:
            raise _LostError

    def _decode(self, notifications: Sequence[Notification]) -> list[tuple[int, Any]]:
        wanted = [n for n in notifications if n.topic in self._topics]
        self.app.keyring.prefetch(n.originator_id for n in wanted)
        events = []
        for notification in wanted:
            try:
                events.append((notification.id, self.app.mapper.to_domain_event(notification)))
            except CaseErasedError:
                continue  # erased: nothing of it reaches a table
        return events

    def _apply_all(self, w: Writer, events: list[tuple[int, Any]]) -> None:
        cases = {c for _, e in events if (c := self.case_of(e)) is not None}
        erased = self._erased_among(w, cases)
        for position, event in events:
            if isinstance(event, ErasureLog.CaseErased):
                self.forget(event.case_id, w)
                w.insert("erased", case_id=event.case_id, seq=position)
                erased.add(event.case_id)
                continue
            if self.case_of(event) in erased:
                continue
            self.apply(event, position, w)

    def _erased_among(self, w: Writer, cases: set[UUID]) -> set[UUID]:
        if not cases:
            return set()
        clause = self.in_list("case_id", [str(c) for c in cases])
        w.cursor.execute(
            self.compose(w.generation, f"SELECT case_id FROM {{erased}} WHERE {clause.sql}"),
            clause.params,
        )
        return {UUID(str(r["case_id"])) for r in w.cursor.fetchall()}

    # -- rebuilding -----------------------------------------------------------------------------
    def rebuild(self, progress: Callable[[Progress], None] | None = None) -> Progress:
        """Build the tables anew from the whole log, beside the live ones, then make them live.
        Resumes a rebuild that was interrupted. Safe while the service runs (any replicas)."""
        started = time.monotonic()
        with schema_lock(self._datastore), self._writing() as cursor:
            if self._meta_in(cursor, self.build_name) is None:
                generation = self._next_generation(cursor)
                self._create_generation(cursor, generation)
                cursor.execute(
                    self.sql(
                        "INSERT INTO {meta} (name, generation, position) VALUES (%s, %s, 0)",
                        meta=self.meta_table,
                    ),
                    (self.build_name, generation),
                )
        end = self.app.recorder.max_notification_id() or 0
        applied = 0

        def step(position: int, count: int) -> None:
            nonlocal applied
            applied += count
            if progress is not None:
                progress(Progress(position, end, applied, time.monotonic() - started))

        self._advance(self.build_name, progress=step)
        old = self._make_live()
        if old is not None:
            # Reads that looked up the live generation just before the switch finish on the
            # old tables; then they go.
            time.sleep(2.0)
            self.drop_unused()
        meta = self._meta(self.live_name)
        done = Progress(meta.position if meta else 0, end, applied, time.monotonic() - started)
        if progress is not None:
            progress(done)
        log.info("views.rebuilt", service=self.service, applied=applied, seconds=done.seconds)
        return done

    def _make_live(self) -> int | None:
        """In one transaction holding the live row: the rest of the log into the new
        generation, then it is the live one. Returns the generation it replaced."""
        with self._lock, self._writing() as cursor:
            cursor.execute(  # holds the live row: no catch-up runs beside this
                self.sql(
                    "UPDATE {meta} SET position = position WHERE name = %s", meta=self.meta_table
                ),
                (self.live_name,),
            )
            live, build = (self._meta_in(cursor, n) for n in (self.live_name, self.build_name))
            if live is None or build is None:
                return None  # another rebuild finished it
            w = Writer(self, cursor, build.generation)
            position = build.position
            while True:
                notifications = self.app.recorder.select_notifications(
                    start=position, limit=self.batch_size, inclusive_of_start=False
                )
                if not notifications:
                    break
                self.notifications_read += len(notifications)
                self._apply_all(w, self._decode(notifications))
                position = notifications[-1].id
            cursor.execute(
                self.sql(
                    "UPDATE {meta} SET generation = %s, position = %s WHERE name = %s",
                    meta=self.meta_table,
                ),
                (build.generation, position, self.live_name),
            )
            cursor.execute(
                self.sql("DELETE FROM {meta} WHERE name = %s", meta=self.meta_table),
                (self.build_name,),
            )
            return live.generation

    # -- reading ---------------------------------------------------------------------------------
    def read(self, query: Callable[[Any, int], Any]) -> Any:
        """Bring the tables up to date, then run ``query(cursor, generation)`` on the live
        generation. Once more if its tables were dropped under it (a rebuild just finished)."""
        self.catch_up(for_read=True)
        for attempt in (1, 2):
            meta = self._meta(self.live_name)
            assert meta is not None
            try:
                with self._transaction(commit=False) as cursor:
                    return query(cursor, meta.generation)
            except PersistenceError:
                if attempt == 2:
                    raise
            except Exception as error:  # psycopg's own (PostgreSQL: an undefined table)
                if attempt == 2 or type(error).__name__ != "UndefinedTable":
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def select(
        self,
        table: str,
        where: Clause,
        *,
        order: Sequence[str] = ("seq",),
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of one table, converted to their kinds."""
        t = self.table(table)
        template = (
            f"SELECT {', '.join(t.names)} FROM {{{table}}} WHERE {where.sql} "
            f"ORDER BY {', '.join(order)}" + (f" LIMIT {int(limit)}" if limit else "")
        )

        def query(cursor: Any, generation: int) -> list[dict[str, Any]]:
            cursor.execute(self.compose(generation, template), where.params)
            return [self.row(t, r) for r in cursor.fetchall()]

        rows: list[dict[str, Any]] = self.read(query)
        return rows

    def query(self, template: str, params: Sequence[Any], kinds: Mapping[str, Kind]) -> list[Any]:
        """Any SELECT over this model's tables (``{table}`` names, ``%s`` parameters); each
        row as a dict of the columns named in ``kinds``, converted to those kinds."""

        def run(cursor: Any, generation: int) -> list[dict[str, Any]]:
            cursor.execute(self.compose(generation, template), list(params))
            found = cursor.fetchall()
            return [{k: from_db(kind, r[k]) for k, kind in kinds.items()} for r in found]

        rows: list[dict[str, Any]] = self.read(run)
        return rows

    def case_list(
        self,
        table: str,
        *,
        list_id: str,
        rule: Rule,
        principal: Principal,
        request: PageRequest | None,
        scope: ScopeColumns,
        filters: Mapping[str, tuple[str, Any]],
        shown: Sequence[str],
    ) -> Page:
        """A page of a case list as the services serve theirs: the caller's scope under
        ``rule`` and each filter given (``name: (column, value)``, an equality; a None value
        leaves it out) answered by the query, the total from the counts where the scope
        allows, each row with the ``shown`` columns only."""
        rule.check_role(principal)
        where = all_of(
            [
                scoped(rule, principal, scope, self),
                *(
                    Clause(f"{column} = %s", (value,))
                    for column, value in filters.values()
                    if value is not None
                ),
            ]
        )
        page = self.page(
            table,
            list_id=list_id,
            filters={name: value for name, (_, value) in filters.items()},
            where=where,
            request=request,
            counted=by_region_alone(rule, principal),
        )
        page.items = [{k: row[k] for k in shown} for row in page.items]
        return page

    def page(
        self,
        table: str,
        *,
        list_id: str,
        filters: Mapping[str, Any],
        where: Clause,
        request: PageRequest | None,
        order: tuple[str, ...] = ("seq", "case_id"),
        counted: bool = False,
    ) -> Page:
        """One page of ``table``'s rows that meet ``where``, in ``order`` (which must be unique
        per row), after the cursor. ``request`` None: every row, as one page. ``counted``:
        ``where`` names only the table's counted columns, so the total is summed from its
        counts, not counted row by row."""
        t = self.table(table)
        after = None
        if request is not None and request.after is not None:
            after = decode_cursor(request.after, list_id, filters)
            if len(after) != len(order):
                raise InvalidCursorError("not a cursor of this list")
        clauses = [where]
        if after is not None:
            pairs = zip(order, after, strict=True)
            keys = [to_db(t.kind(c), from_json(t.kind(c), v)) for c, v in pairs]
            clauses.append(
                Clause(f"({', '.join(order)}) > ({', '.join('%s' for _ in order)})", tuple(keys))
            )
        condition = all_of(clauses)
        limit = None if request is None else request.limit
        rows_sql = (
            f"SELECT {', '.join(t.names)} FROM {{{table}}} WHERE {condition.sql} "
            f"ORDER BY {', '.join(order)}" + ("" if limit is None else f" LIMIT {limit + 1}")
        )
        count_sql = f"SELECT COUNT(*) AS n FROM {{{table}}} WHERE {where.sql}"
        if counted and t.counts is not None:
            counts = t.counts.name
            count_sql = f"SELECT COALESCE(SUM(n), 0) AS n FROM {{{counts}}} WHERE {where.sql}"

        def query(cursor: Any, generation: int) -> Page:
            cursor.execute(self.compose(generation, rows_sql), condition.params)
            rows = [self.row(t, r) for r in cursor.fetchall()]
            more = limit is not None and len(rows) > limit
            rows = rows[:limit] if limit is not None else rows
            total = None
            if limit is not None:
                cursor.execute(self.compose(generation, count_sql), where.params)
                total = int(cursor.fetchone()["n"])
            else:
                total = len(rows)
            following = None
            if more and rows:
                following = encode_cursor(list_id, filters, [rows[-1][c] for c in order])
            return Page(rows, following, total)

        found: Page = self.read(query)
        return found

    # -- checking ----------------------------------------------------------------------------------
    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every live table, in key order (a rebuilt model must equal the live)."""

        def query(cursor: Any, generation: int) -> dict[str, list[dict[str, Any]]]:
            found = {}
            for name, table in sorted(self._tables.items()):
                cursor.execute(self.statement(generation, "select", name))
                found[name] = [self.row(table, r) for r in cursor.fetchall()]
            return found

        dumped: dict[str, list[dict[str, Any]]] = self.read(query)
        return dumped

    def _stored(self) -> None:
        wake = self._wake
        if wake is not None:
            wake()

    async def follow(self) -> None:
        """The service's background job: keep the tables close behind the log (a read then
        rarely has anything to apply itself). Wakes on every save, gathering what arrives in a
        short moment into one transaction."""
        import asyncio

        wake = asyncio.Event()
        loop = asyncio.get_running_loop()

        def woken() -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(wake.set)

        self._wake = woken
        while True:
            if self.app.store_reachable:
                await asyncio.to_thread(self.behind)
                await asyncio.to_thread(self.catch_up)
                self.lag = 0
            try:
                await asyncio.wait_for(wake.wait(), timeout=FOLLOW_IDLE_SECONDS)
            except TimeoutError:
                continue
            wake.clear()
            await asyncio.sleep(FOLLOW_GATHER_SECONDS)


#: The background job looks at the log at least this often, and gathers what is stored within
#: this moment after a save into one transaction.
FOLLOW_IDLE_SECONDS = 2.0
FOLLOW_GATHER_SECONDS = 0.25


def from_json(kind: Kind, value: Any) -> Any:
    if value is None:
        return None
    if kind in ("int", "bool"):
        if not isinstance(value, int):
            raise InvalidCursorError("not a cursor of this list")
        return value
    if kind == "uuid":
        try:
            return UUID(str(value))
        except ValueError:
            raise InvalidCursorError("not a cursor of this list") from None
    if kind == "time":
        try:
            return datetime.fromisoformat(str(value))
        except ValueError:
            raise InvalidCursorError("not a cursor of this list") from None
    if kind == "date":
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise InvalidCursorError("not a cursor of this list") from None
    return str(value)


def _group_value(value: Any) -> str:
    """A counted column's value as the counts table keeps it (text; none as empty text)."""
    if value is None:
        return ""
    return str(value.value) if isinstance(value, Enum) else str(value)


def _rowcount(cursor: Any) -> int:
    inner = getattr(cursor, "sqlite_cursor", cursor)
    return int(inner.rowcount)


# -- scoping --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScopeColumns:
    """How a read model's table answers each scope of a rule: the column holding the case's
    folded region, and a clause (``%s`` for the coordinator id) for "assigned to the case"."""

    region: str | None = None
    assigned: str | None = None


# -- what every service's case list has in common ----------------------------------------------
#: A case list's indexes: its order (the log's), and each filter the list pages (stage, model,
#: region, region and stage) followed by that order, so any page is one index range.
CASE_LIST_INDEXES: tuple[tuple[str, ...], ...] = (
    ("seq", "case_id"),
    ("stage", "seq", "case_id"),
    ("model", "seq", "case_id"),
    ("region_key", "seq", "case_id"),
    ("region_key", "stage", "seq", "case_id"),
)
#: A case list's totals are kept per region, stage and model (``Table.counted_by``).
CASE_LIST_COUNTED = ("region_key", "stage", "model")
#: The coordinators of each case, as the service heard them: a coordinator's own cases.
CASE_COORDINATORS = Table(
    "case_coordinators",
    columns("case_id:uuid", "coordinator_id"),
    key=("case_id", "coordinator_id"),
    indexes=(("coordinator_id", "case_id"),),
)
#: A coordinator's own cases (``%s``: their id), by ``case_coordinators``.
ASSIGNED = "case_id IN (SELECT case_id FROM {case_coordinators} WHERE coordinator_id = %s)"
#: A case list's scopes: a region by its folded ``region_key``, a coordinator's own cases.
BY_REGION = ScopeColumns(region="region_key")
BY_REGION_OR_ASSIGNED = ScopeColumns(region="region_key", assigned=ASSIGNED)


def note_coordinators(w: Writer, case_id: UUID, coordinator_ids: Sequence[str]) -> None:
    """The case's coordinators are these now (``case_coordinators``)."""
    w.delete("case_coordinators", case_id=case_id)
    for coordinator_id in coordinator_ids:
        w.insert("case_coordinators", case_id=case_id, coordinator_id=coordinator_id)


def by_region_alone(rule: Rule, principal: Principal) -> bool:
    """Whether ``scoped`` answers the rule for this principal from the region column alone (or
    lets every row through): then a list's total may come from its counts."""
    return rule.anyone or all(
        scope in (Scope.ANY, Scope.REGION, Scope.ON_BEHALF)
        for role, scope in rule.grants
        if role in principal.roles
    )


def scoped(rule: Rule, principal: Principal, columns: ScopeColumns, model: ReadModel) -> Clause:
    """The rows the principal may see under the rule, as a WHERE clause: the same grants
    ``Rule.allows`` checks row by row, answered by the query itself (so a page is cut after the
    scoping, never before)."""
    if rule.anyone:
        return Clause("1 = 1")
    allowed: list[Clause] = []
    for role, scope in rule.grants:
        if role not in principal.roles:
            continue
        if scope is Scope.ANY:
            return Clause("1 = 1")
        if scope in (Scope.REGION, Scope.ON_BEHALF) and columns.region:
            regions = sorted({fold(r) for r in principal.regions})
            if regions:
                allowed.append(model.in_list(columns.region, regions))
        elif scope is Scope.ASSIGNED and columns.assigned and principal.coordinator_id:
            allowed.append(Clause(columns.assigned, (principal.coordinator_id,)))
    return any_of(allowed)


def paginate(
    rows: Sequence[Mapping[str, Any]],
    *,
    key: str,
    list_id: str,
    filters: Mapping[str, Any],
    request: PageRequest | None,
) -> Page:
    """A page of a list that is held in memory (coordination's pool): the rows in ``key``
    order (unique per row), after the cursor."""
    ordered = sorted(rows, key=lambda row: str(row[key]))
    if request is not None and request.after is not None:
        after = decode_cursor(request.after, list_id, filters)
        if len(after) != 1 or not isinstance(after[0], str):
            raise InvalidCursorError("not a cursor of this list")
        ordered = [row for row in ordered if str(row[key]) > after[0]]
        total = len(rows)
    else:
        total = len(rows)
    if request is None:
        return Page([dict(r) for r in ordered], None, total)
    chosen = ordered[: request.limit]
    following = None
    if len(ordered) > request.limit:
        following = encode_cursor(list_id, filters, [str(chosen[-1][key])])
    return Page([dict(r) for r in chosen], following, total)
