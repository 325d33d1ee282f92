"""Fencing: the work a replica does under its service's lease (``shared.lease``) carries the
lease's term, and everything that work changes checks the term first.

A term is one holding of the lease: one replica, one epoch. The relay, the consumers and the
timers run inside a term (a context variable, which ``asyncio.to_thread`` carries into the
worker thread), and:

- every store write they make checks, in its own transaction, that the term still holds the
  lease by the database's clock (``Term.check``, called from the recorder's insert and from the
  relay's checkpoint): a write of a replica that lost the lease is refused, never half-done;
- before a side effect outside the store (an e-mail, a publish, an ack) they ask
  ``still_held()``: whether the term's time, counted on this process's monotonic clock from
  before its last renewal was sent, has not run out. It runs out before the database lets
  anyone else take the lease, so a replica that was paused (SIGSTOP, a frozen VM) finds on
  waking that it may do nothing, before anything else it does.

Outside any term (HTTP commands, tests, tools) nothing is checked: ``still_held()`` is true and
writes go through. On SQLite, a service's one process holds its lease for good and its term
checks nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Protocol


class LeaseLostError(RuntimeError):
    """The work's term no longer holds the lease: nothing was written."""


class Term(Protocol):
    """One holding of a lease."""

    def valid(self) -> bool:
        """Whether this process may still act for the term (its own clock)."""
        ...

    def check(self, cursor: Any) -> None:
        """In the caller's transaction: raise ``LeaseLostError`` unless the term still holds
        the lease (the database's clock), and keep it held until that transaction ends."""
        ...


_TERM: ContextVar[Term | None] = ContextVar("kring_term", default=None)


def current() -> Term | None:
    return _TERM.get()


@contextlib.contextmanager
def within(term: Term | None) -> Iterator[None]:
    """Run the block (and what it starts: tasks, threads) as work of ``term``."""
    token = _TERM.set(term)
    try:
        yield
    finally:
        _TERM.reset(token)


def still_held() -> bool:
    """Whether the work running now may act: outside a term always, inside while it lasts."""
    term = _TERM.get()
    return term is None or term.valid()


def check_in(cursor: Any) -> None:
    """The store's hook: in a write's transaction, refuse it if its term lost the lease."""
    term = _TERM.get()
    if term is not None:
        term.check(cursor)
