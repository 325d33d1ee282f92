"""Who read which case, what and when (NEN 7513, the Dutch standard for logging access to care
records): one row per read of personal data, append-only, in the service's own database.

A row names the reader (subject, display name, the role they read in, for whom where a regional
manager read for the coordinator), the case, what was read (``case``, ``participants``,
``plan``, ``plan.document.pdf``, ``history``, …), when, and the case's region (so the regional
manager can still be told after the case is erased). Never the data itself, and nothing about
the family: the rows are not under the case's key and outlive its erasure.

A read is answered only once its row is committed. Rows of reads that arrive together share one
commit (group commit): the first reader writes every row waiting at that moment while the others
wait for it, so a burst of reads costs a few commits, not one fsync each, and no read goes
unrecorded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder

from shared.actor import Actor
from shared.store import _Dialect


@dataclass(frozen=True)
class AccessEntry:
    case_id: UUID
    at: datetime
    subject: str
    name: str | None
    role: str
    on_behalf_of: str | None
    what: str
    region: str | None
    service: str


class AccessLog:
    def __init__(self, recorder: ApplicationRecorder, service: str) -> None:
        self.service = service
        self.table = f"{service}_access_log"
        sql = _Dialect(getattr(recorder, "datastore", None))
        self._datastore = sql.datastore
        names = {"table": self.table}
        self._insert = sql(
            "INSERT INTO {table} (case_id, at, subject, name, role, on_behalf_of, what, region)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            **names,
        )
        self._select = sql(
            "SELECT id, case_id, at, subject, name, role, on_behalf_of, what, region FROM {table}"
            " WHERE case_id = %s AND id > %s ORDER BY id LIMIT %s",
            **names,
        )
        self._count = sql("SELECT COUNT(*) AS n FROM {table} WHERE case_id = %s", **names)
        self._regions = sql(
            "SELECT DISTINCT region FROM {table} WHERE case_id = %s AND region IS NOT NULL",
            **names,
        )
        serial = "BIGSERIAL PRIMARY KEY" if sql.postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
        with self._datastore.transaction(commit=True) as cursor:
            cursor.execute(
                sql(
                    f"CREATE TABLE IF NOT EXISTS {{table}} (id {serial}, case_id TEXT NOT NULL,"
                    " at TEXT NOT NULL, subject TEXT NOT NULL, name TEXT, role TEXT NOT NULL,"
                    " on_behalf_of TEXT, what TEXT NOT NULL, region TEXT)",
                    **names,
                )
            )
            cursor.execute(
                sql(f"CREATE INDEX IF NOT EXISTS {self.table}_case ON {{table}} (case_id)", **names)
            )
        self._cond = threading.Condition()
        self._pending: list[tuple[Any, ...]] = []
        self._collecting = 1  # the batch new rows join
        self._committed = 0  # every batch up to this one is stored
        self._failed: set[int] = set()
        self._writing = False
        #: Commits made (a burst of reads shares one): for the tests and the benchmark.
        self.commits = 0

    def record(
        self, case_id: UUID, actor: Actor, what: str, region: str | None, at: datetime
    ) -> None:
        """Store one read; returns once it is committed (raises if it could not be)."""
        row = (
            str(case_id),
            at.isoformat(),
            actor.id,
            actor.name,
            actor.role.value,
            actor.on_behalf_of,
            what,
            region,
        )
        with self._cond:
            self._pending.append(row)
            mine = self._collecting
            while True:
                if mine in self._failed:
                    raise AccessLogError("the read could not be recorded; it is not answered")
                if self._committed >= mine:
                    return
                if not self._writing:
                    break
                self._cond.wait()
            # This reader writes the batch: every row waiting now, its own among them.
            self._writing = True
            rows, self._pending = self._pending, []
            batch, self._collecting = self._collecting, self._collecting + 1
        ok = False
        try:
            with self._datastore.transaction(commit=True) as cursor:
                cursor.executemany(self._insert, rows)
            ok = True
        finally:
            with self._cond:
                self._writing = False
                if ok:
                    self._committed = batch
                    self.commits += 1
                else:
                    self._failed.add(batch)
                self._cond.notify_all()

    def entries(self, case_id: UUID) -> list[AccessEntry]:
        """Every recorded read of the case, oldest first."""
        found: list[AccessEntry] = []
        after = 0
        while True:
            page, after_next, _ = self.entries_page(case_id, after, 1000)
            found += page
            if after_next is None:
                return found
            after = after_next

    def entries_page(
        self, case_id: UUID, after: int, limit: int
    ) -> tuple[list[AccessEntry], int | None, int]:
        """Up to ``limit`` reads of the case after the row ``after`` (0: from the first); the
        row to continue after (None: none left), and how many there are in all."""
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(self._select, (str(case_id), after, limit + 1))
            rows = cursor.fetchall()
            cursor.execute(self._count, (str(case_id),))
            total = int(cursor.fetchone()["n"])
        following = int(rows[limit - 1]["id"]) if len(rows) > limit else None
        return [self._entry(row) for row in rows[:limit]], following, total

    def regions(self, case_id: UUID) -> list[str]:
        """The regions the reads of the case recorded (what is left of it once erased)."""
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(self._regions, (str(case_id),))
            return sorted(str(row["region"]) for row in cursor.fetchall())

    def _entry(self, row: Any) -> AccessEntry:
        return AccessEntry(
            case_id=UUID(row["case_id"]),
            at=datetime.fromisoformat(row["at"]),
            subject=row["subject"],
            name=row["name"],
            role=row["role"],
            on_behalf_of=row["on_behalf_of"],
            what=row["what"],
            region=row["region"],
            service=self.service,
        )


class AccessLogError(RuntimeError):
    pass
