"""One active replica per service: a lease in the service's own PostgreSQL store.

Every replica serves HTTP. The relay, the tracked consumers and the timers (every job a service
hands the runtime as ``background``) run only in the replica that holds its service's lease, and
another takes them over within seconds when it dies or hangs. docs/architecture.md says why the
lease lives in PostgreSQL rather than in a NATS key-value bucket; in short: the store is the one
thing two replicas of a service share and the only place a write can be fenced in its own
transaction, its clock is the one clock every replica reads, and a replica that cannot reach its
store could do none of that work anyway.

**The lease** is a row ``(name, holder, epoch, expires_at)`` in ``<service>_lease``, judged by
the database's clock (``clock_timestamp()``): a replica takes it when it has expired (a new
epoch: a new *term*), its holder renews it every third of its length, and gives it up when it
stops. The holder counts the term as its own until ``sent + seconds - margin`` on its monotonic
clock, ``sent`` taken before the renewal was sent: the database cannot have let anyone else in
before then. A renewal that fails because the store is away is tried again until that moment;
then the work stops.

**Fencing** (``shared.fence``): the work runs as the term's, and each store write it makes reads
the lease row ``FOR SHARE`` in its own transaction and refuses itself unless the term still
holds it. A replica that takes the lease over must lock that row, so it waits for a write in
flight to commit, and a write that comes after sees the new epoch and fails: no two terms ever
write. A replica paused inside a transaction holds it no longer than PostgreSQL's
``idle_in_transaction_session_timeout`` (eventsourcing sets 5 s), so a pause cannot block the
takeover. Side effects outside the store (an e-mail, a publish) check the term's own clock first.

**SQLite** (one process per service, ``kring run``): the process holds its lease for good, and
nothing is read or written for it (``SoleLease``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shared.fence import LeaseLostError, Term
from shared.logging import get_logger
from shared.metrics import LEASE_ACQUIRED, LEASE_FENCED, LEASE_HELD, LEASE_LOST
from shared.store import STORE_UNAVAILABLE, StoreQueries

log = get_logger(__name__)

#: The one lease of a service: its relay, consumers and timers together.
WORKERS = "workers"
DEFAULT_SECONDS = 10.0
#: How long a takeover waits for a write in flight (holding the lease row) before it tries again.
LOCK_TIMEOUT = "1s"
#: What a renewal or release may meet: the store away, or a renewal taking too long.
NOT_NOW: tuple[type[BaseException], ...] = (TimeoutError, *STORE_UNAVAILABLE)


def holder_name() -> str:
    """This process, as the lease table and the logs name it: host (a container's or pod's
    name), process, and a random part (a restarted process is another holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Lease(ABC):
    """A service's lease, as one replica sees it."""

    name: str
    holder: str
    seconds: float

    @property
    def renew_seconds(self) -> float:
        """How often the holder renews."""
        return self.seconds / 3

    @property
    def poll_seconds(self) -> float:
        """How often a replica without the lease tries to take it."""
        return min(1.0, self.seconds / 3)

    @abstractmethod
    async def acquire(self) -> Term | None:
        """Take the lease if it is free (expired, given up, or this holder's): a new term."""

    @abstractmethod
    async def renew(self, term: Term) -> bool:
        """Extend the term; False if the lease is another's now. Raises one of
        ``STORE_UNAVAILABLE`` if the store cannot say."""

    @abstractmethod
    async def release(self, term: Term) -> None:
        """Give the lease up now, so another replica takes it at once."""


@dataclass
class _SoleTerm:
    def valid(self) -> bool:
        return True

    def check(self, cursor: Any) -> None:
        return None


class SoleLease(Lease):
    """The lease of a service that runs as one process (SQLite): always this process's."""

    def __init__(self, name: str = WORKERS) -> None:
        self.name, self.holder, self.seconds = name, holder_name(), 3600.0 * 3

    async def acquire(self) -> Term | None:
        return _SoleTerm()

    async def renew(self, term: Term) -> bool:
        return True

    async def release(self, term: Term) -> None:
        return None


class PostgresLease(Lease):
    """The lease row in ``<service>_lease`` of the service's PostgreSQL store."""

    def __init__(
        self,
        queries: StoreQueries,
        *,
        seconds: float = DEFAULT_SECONDS,
        name: str = WORKERS,
        holder: str | None = None,
    ) -> None:
        self.queries, self.name, self.seconds = queries, name, seconds
        self.holder = holder or holder_name()
        #: How much earlier than the database the holder counts its term as over: more than
        #: the clocks of two processes can drift apart over one term.
        self.margin = max(0.5, seconds / 10)
        self.table = queries.lease_table
        sql, table = queries.sql, {"table": queries.lease_table}
        self._lock_timeout = f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"
        self._acquire = sql(
            "INSERT INTO {table} AS lease (name, holder, epoch, expires_at) "
            "VALUES (%s, %s, 1, clock_timestamp() + make_interval(secs => %s)) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
            "epoch = lease.epoch + 1, expires_at = excluded.expires_at "
            "WHERE lease.expires_at <= clock_timestamp() OR lease.holder = excluded.holder "
            "RETURNING epoch",
            **table,
        )
        self._renew = sql(
            "UPDATE {table} SET expires_at = clock_timestamp() + make_interval(secs => %s) "
            "WHERE name = %s AND holder = %s AND epoch = %s AND expires_at > clock_timestamp() "
            "RETURNING epoch",
            **table,
        )
        self._release = sql(
            "UPDATE {table} SET expires_at = clock_timestamp() "
            "WHERE name = %s AND holder = %s AND epoch = %s RETURNING epoch",
            **table,
        )
        self._fence = sql(
            "SELECT epoch FROM {table} "
            "WHERE name = %s AND holder = %s AND epoch = %s AND expires_at > clock_timestamp() "
            "FOR SHARE",
            **table,
        )
        self._who = sql(
            "SELECT holder, epoch, expires_at > clock_timestamp() AS live FROM {table} "
            "WHERE name = %s",
            **table,
        )
        #: The term this process holds now, and until when by its own clock.
        self.epoch: int | None = None
        self.deadline = 0.0

    # -- the statements, each in a transaction of its own (in a worker thread) ---------------
    def _run(self, statement: Any, parameters: tuple[Any, ...]) -> tuple[float, Any]:
        with self.queries.transaction(commit=True) as cursor:
            cursor.execute(self._lock_timeout)
            sent = time.monotonic()
            cursor.execute(statement, parameters)
            return sent, cursor.fetchone()

    def holding(self) -> dict[str, Any] | None:
        """Who holds the lease now, by the database: holder, epoch, live."""
        with self.queries.transaction(commit=False) as cursor:
            cursor.execute(self._who, (self.name,))
            row = cursor.fetchone()
        return None if row is None else dict(row)

    async def acquire(self) -> Term | None:
        sent, row = await asyncio.to_thread(
            self._run, self._acquire, (self.name, self.holder, self.seconds)
        )
        if row is None:
            return None
        self.epoch, self.deadline = int(row["epoch"]), sent + self.seconds - self.margin
        return _PostgresTerm(self, self.epoch)

    async def renew(self, term: Term) -> bool:
        assert isinstance(term, _PostgresTerm)
        sent, row = await asyncio.to_thread(
            self._run, self._renew, (self.seconds, self.name, self.holder, term.epoch)
        )
        if row is None:
            self.epoch = None
            return False
        self.deadline = sent + self.seconds - self.margin
        return True

    async def release(self, term: Term) -> None:
        assert isinstance(term, _PostgresTerm)
        self.epoch = None
        await asyncio.to_thread(self._run, self._release, (self.name, self.holder, term.epoch))

    def fence(self, cursor: Any, epoch: int) -> None:
        # The write holds the lease row (FOR SHARE) until it ends, and a takeover waits for it.
        # A holder stopped mid-write (paused, its host frozen) would hold it for good: no idle
        # timeout ends a transaction whose pipeline the server still waits on. So the write's
        # transaction may last no longer than the lease (the server ends the session after).
        timeout = f"{int(self.seconds * 1000)}ms"
        cursor.execute("SELECT set_config('transaction_timeout', %s, true)", (timeout,))
        cursor.execute(self._fence, (self.name, self.holder, epoch))
        if cursor.fetchone() is None:
            LEASE_FENCED.inc()
            log.warning("lease.write_refused", holder=self.holder, epoch=epoch)
            raise LeaseLostError(f"{self.queries.service}: term {epoch} no longer holds the lease")


@dataclass
class _PostgresTerm:
    lease: PostgresLease
    epoch: int

    def valid(self) -> bool:
        return self.lease.epoch == self.epoch and time.monotonic() < self.lease.deadline

    def check(self, cursor: Any) -> None:
        self.lease.fence(cursor, self.epoch)


def lease_for(queries: StoreQueries, *, postgres: bool, seconds: float) -> Lease:
    return PostgresLease(queries, seconds=seconds) if postgres else SoleLease()


class Leader:
    """Holds the lease for this replica while it can: ``begin(term)`` when it takes it (start
    the relay, consumers and timers as the term's work), ``end()`` when it loses it, before its
    own clock says the database may let another replica in, and when the service stops (then
    the lease is given up, so another takes over at once)."""

    def __init__(
        self,
        lease: Lease,
        *,
        begin: Callable[[Term], Awaitable[None]],
        end: Callable[[], Awaitable[None]],
    ) -> None:
        self.lease = lease
        self._begin, self._end = begin, end
        self.term: Term | None = None
        #: The term held last, until it is given up (``stop`` releases it).
        self._last: Term | None = None
        #: Since when (monotonic) this replica has tried to take the lease and not had it.
        self.waiting_since: float | None = time.monotonic()

    @property
    def active(self) -> bool:
        return self.term is not None and self.term.valid()

    async def run(self) -> None:
        while True:
            if self.term is None:
                if not await self._take():
                    await asyncio.sleep(self.lease.poll_seconds)
                continue
            await self._hold(self.term)

    async def stop(self) -> None:
        """The service stops (``run`` cancelled first): end the term's work, whatever state a
        cancelled ``run`` left it in, and give the lease up."""
        term, self.term = self.term or self._last, None
        LEASE_HELD.set(0)
        await self._end()
        if term is not None:
            log.warning("lease.given_up", lease=self.lease.name, holder=self.lease.holder)
            with contextlib.suppress(*NOT_NOW):  # else it expires by itself
                await asyncio.wait_for(self.lease.release(term), timeout=2.0)

    async def _take(self) -> bool:
        try:
            term = await self.lease.acquire()
        except STORE_UNAVAILABLE as error:
            log.debug("lease.unreachable", error=type(error).__name__)
            return False
        if term is None:
            return False
        self.term = self._last = term
        waited = time.monotonic() - self.waiting_since if self.waiting_since else 0.0
        self.waiting_since = None
        LEASE_HELD.set(1)
        LEASE_ACQUIRED.inc()
        log.warning(
            "lease.acquired",
            lease=self.lease.name,
            holder=self.lease.holder,
            epoch=getattr(term, "epoch", None),
            waited_seconds=round(waited, 2),
        )
        await self._begin(term)
        return True

    async def _hold(self, term: Term) -> None:
        """Renew the term until it is lost; return once its work has stopped."""
        next_renewal = self.lease.renew_seconds
        while True:
            renew_at = time.monotonic() + next_renewal
            # Woken at the renewal or at the term's own end, whichever comes first; after a
            # pause (SIGSTOP) the loop's clock has moved on and this returns at once.
            await asyncio.sleep(max(0.0, min(renew_at, self._deadline()) - time.monotonic()))
            if not term.valid():  # renewals failed for too long, or this process was paused
                LEASE_LOST.inc()
                await self._stop("lease.expired")
                return
            if time.monotonic() < renew_at:
                continue
            try:
                renewed = await asyncio.wait_for(
                    self.lease.renew(term), timeout=max(0.1, self._deadline() - time.monotonic())
                )
            except NOT_NOW as error:
                log.warning("lease.renewal_failed", error=type(error).__name__)
                next_renewal = min(1.0, self.lease.renew_seconds)  # soon, while the term lasts
                continue
            if not renewed:
                LEASE_LOST.inc()
                await self._stop("lease.lost")
                return
            next_renewal = self.lease.renew_seconds

    def _deadline(self) -> float:
        """When this process's term ends by its own clock (far away for a sole lease)."""
        deadline = getattr(self.lease, "deadline", None)
        return float(deadline) if deadline is not None else time.monotonic() + self.lease.seconds

    async def _stop(self, event: str) -> None:
        self.term = None
        self.waiting_since = time.monotonic()
        LEASE_HELD.set(0)
        log.warning(event, lease=self.lease.name, holder=self.lease.holder)
        await self._end()
