"""Value objects of the domains, and how they are stored.

A value object is a small immutable model (a participant, an agreement, a minimum requirement, a
timer): a domain event carries it and an aggregate keeps it, instead of a ``dict[str, Any]``
whose keys every reader has to know. Each is a frozen pydantic model, so it is checked where it is
made and rebuilt, nested values included, from what was stored.

They are stored through eventsourcing's JSON transcoder: each value class a service keeps is
registered with ``ValueTranscoding`` (``KringApplication.value_types``), stored as
``{"_type_": "<name>", "_data_": {...}}``. The name is the class's ``stored_as`` and never
changes; a value that gains a field gives it a default, so what was stored before still reads.
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

from eventsourcing.persistence import Transcoding
from pydantic import BaseModel, ConfigDict

V = TypeVar("V", bound="Value")


class Value(BaseModel):
    """A domain value: immutable, compared by its fields. ``stored_as`` names it in the store."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stored_as: ClassVar[str]

    def but(self: V, **changes: Any) -> V:
        """A copy with ``changes``, checked like a new value."""
        return type(self).model_validate(self.model_dump() | changes)


class ValueTranscoding(Transcoding, Generic[V]):
    """Stores a ``Value`` as its fields (dates as ISO text) and rebuilds it, checked."""

    def __init__(self, cls: type[V]) -> None:
        self.type = cls
        self.name = cls.stored_as
        self._cls = cls

    def encode(self, obj: V) -> dict[str, Any]:
        return obj.model_dump(mode="json")

    def decode(self, data: dict[str, Any]) -> V:
        return self._cls.model_validate(data)
