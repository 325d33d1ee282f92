"""Snapshots of aggregates whose histories make loading costly (eventsourcing's snapshotting).

eventsourcing's ``Snapshot`` keeps an aggregate's ``__dict__`` as JSON. Two things in Kring's
aggregates do not survive that as they are: dictionaries keyed by UUID (JSON keys are text: the
pool's relations, the erasure log's cases) and enum members (a ``StrEnum`` comes back as plain
text, and the domains compare stages with ``is``). ``KringSnapshot`` tags both on the way in and
restores them on the way out; everything else (UUIDs, dates, times as values) the transcoder
already carries. A snapshot goes through the same mapper as the events, so a case's snapshot is
sealed under the case's key and shredded with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from eventsourcing.domain import Aggregate, BaseAggregate, Snapshot
from eventsourcing.utils import get_topic, resolve_topic

_ITEMS = "__kring_items__"
_ENUM = "__kring_enum__"


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
            state=freeze(taken.state),
        )

    def mutate(self, _: None) -> BaseAggregate[Any]:
        thawed = Snapshot(
            originator_id=self.originator_id,
            originator_version=self.originator_version,
            timestamp=self.timestamp,
            topic=self.topic,
            state=thaw(self.state),
        )
        aggregate: Aggregate = thawed.mutate(None)  # type: ignore[assignment]
        return aggregate
