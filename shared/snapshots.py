"""Snapshots of aggregates whose histories make loading costly (eventsourcing's snapshotting).

eventsourcing's ``Snapshot`` keeps an aggregate's ``__dict__`` as JSON. Two things in Kring's
aggregates do not survive that as they are: dictionaries keyed by UUID (JSON keys are text: the
pool's relations, the erasure log's cases) and enum members (a ``StrEnum`` comes back as plain
text, and the domains compare stages with ``is``). ``KringSnapshot`` tags both on the way in and
restores them on the way out; everything else (UUIDs, dates, times as values) the transcoder
already carries. A snapshot goes through the same mapper as the events, so a case's snapshot is
sealed under the case's key and shredded with it.

A snapshot is of the aggregate's attributes as its class had them when it was taken. A release
that changes them (an attribute added, renamed, of another type) raises the class's
``state_version``; snapshots taken under another version are passed over (``CurrentSnapshots``),
so the aggregate loads from its events, which upcasters keep readable, until its next snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, BaseAggregate, Snapshot
from eventsourcing.persistence import EventStore
from eventsourcing.utils import get_topic, resolve_topic

_ITEMS = "__kring_items__"
_ENUM = "__kring_enum__"
#: The aggregate class's ``state_version`` when the snapshot was taken (absent: 1).
_STATE_VERSION = "__kring_state_version__"


def state_version(cls: type[Any]) -> int:
    """The version of the attributes an aggregate class keeps (``state_version``, default 1)."""
    return int(getattr(cls, "state_version", 1))


def freeze(value: Any) -> Any:
    if isinstance(value, Enum):
        return {_ENUM: [get_topic(type(value)), value.value]}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: freeze(v) for k, v in value.items()}
        return {_ITEMS: [[freeze(k), freeze(v)] for k, v in value.items()]}
    if isinstance(value, list):
        return [freeze(v) for v in value]
    return value


def thaw(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _ENUM in value:
            topic, member = value[_ENUM]
            return resolve_topic(topic)(member)
        if len(value) == 1 and _ITEMS in value:
            return {thaw(k): thaw(v) for k, v in value[_ITEMS]}
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class KringSnapshot(Snapshot):
    @classmethod
    def take(cls, aggregate: Any) -> KringSnapshot:
        taken = Snapshot.take.__func__(cls, aggregate)  # type: ignore[attr-defined]
        return cls(
            originator_id=taken.originator_id,
            originator_version=taken.originator_version,
            timestamp=taken.timestamp,
            topic=taken.topic,
            state=freeze(taken.state) | {_STATE_VERSION: state_version(type(aggregate))},
        )

    @property
    def current(self) -> bool:
        """Taken of the attributes the aggregate's class keeps now."""
        taken_under = self.state.get(_STATE_VERSION, 1)
        return bool(taken_under == state_version(resolve_topic(self.topic)))

    def mutate(self, _: None) -> BaseAggregate[Any]:
        state = {k: v for k, v in self.state.items() if k != _STATE_VERSION}
        thawed = Snapshot(
            originator_id=self.originator_id,
            originator_version=self.originator_version,
            timestamp=self.timestamp,
            topic=self.topic,
            state=thaw(state),
        )
        aggregate: Aggregate = thawed.mutate(None)  # type: ignore[assignment]
        return aggregate


class CurrentSnapshots:
    """The snapshot store as the repository reads it: a snapshot taken under another
    ``state_version`` of its aggregate's class is not there (the aggregate loads from its
    events). Everything else is the store's own."""

    def __init__(self, store: EventStore[UUID]) -> None:
        self.store = store

    def get(self, originator_id: UUID, **kwargs: Any) -> Iterator[Any]:
        for snapshot in self.store.get(originator_id, **kwargs):
            if not isinstance(snapshot, KringSnapshot) or snapshot.current:
                yield snapshot

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)
