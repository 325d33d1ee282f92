"""Erasure (right to be forgotten) in append-only stores: a key per case, deleted to erase it.

Every event of a case's aggregate is encrypted with that case's own data key (AES-GCM), on top
of the service's cipher key where one is set. Erasing a case deletes its key and leaves a
tombstone, so its events can never be read again and no key is ever made for it again; the
erasure itself is an event of the service's ``ErasureLog``, under the service's own key, so the
audit trail says who erased which case when. Aggregates that are not a case (the coordinator
pool, the erasure log itself) keep the service's key: list them in
``KringApplication.shared_aggregate_ids``. An aggregate kept beside a case under a key of its own
(coordination's relation notes) is shredded with it: ``KringApplication.keys_of_case``.

Copies on the stream carry no personal data by design (``shared.events``), so nothing there needs
shredding. Keys live in the service's own database, wrapped with the service's cipher key where
one is set (without one, erasure still works; only encryption at rest needs the key).
"""

from __future__ import annotations

import threading
from base64 import b64decode, b64encode
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Cipher, IntegrityError, Mapper, StoredEvent

from shared.cipher import AESGCMCipher
from shared.errors import CaseNotFoundError
from shared.store import StoreQueries

#: Marks a state encrypted with a case key (events stored before case keys existed lack it).
CASE_KEY_PREFIX = b"\x00kring-case-key:1\x00"
ERASURE_LOG_ID = uuid5(UUID("b0c4a3de-6f55-4f0e-9a59-2f7b5c1d3e8a"), "erasure-log")


class CaseErasedError(CaseNotFoundError):
    """The case was erased: its events cannot be read any more (410 at the HTTP edge)."""

    def __init__(self, case_id: UUID) -> None:
        super().__init__(case_id)
        self.args = (f"case {case_id} was erased",)


class ErasureReason(StrEnum):
    """Why a case is erased (a kept list: free text could itself be personal data)."""

    REQUESTED_BY_PERSON = "requested_by_person"  # the person asked (AVG/GDPR article 17)
    RETENTION_ENDED = "retention_ended"
    UNLAWFULLY_PROCESSED = "unlawfully_processed"
    OTHER = "other"


class ErasureLog(Aggregate):
    """Which cases this service erased, when, why and by whom. Under the service's own key."""

    class CaseErased(Aggregate.Event):
        """A case erased here. Version 2 adds ``erased_with``: the case whose erasure took this
        one along (a follow-up case is erased with the case it follows); None for a case erased
        in its own right, and for every erasure stored before version 2."""

        class_version = 2

        case_id: UUID
        model: str | None
        reason: str
        at: datetime
        actor: dict[str, str]
        erased_with: UUID | None = None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["erased_with"] = None

    @event("Opened")
    def __init__(self, id: UUID) -> None:
        self.erased: dict[UUID, dict[str, Any]] = {}

    @event(CaseErased)
    def record(
        self,
        *,
        case_id: UUID,
        model: str | None,
        reason: str,
        at: datetime,
        actor: dict[str, str],
        erased_with: UUID | None,
    ) -> None:
        self.erased[case_id] = {
            "reason": reason,
            "at": at,
            "actor": actor,
            "model": model,
            "erased_with": erased_with,
        }


_ERASED = object()


class CaseKeyring:
    """Ciphers per case, made on a case's first event, cached (the most recent few thousand)."""

    def __init__(self, keys: StoreQueries, wrapper: Cipher | None, cache_size: int = 4096) -> None:
        self._keys = keys
        self._wrapper = wrapper
        self._cache: OrderedDict[UUID, Any] = OrderedDict()
        self._cache_size = cache_size
        #: Keys made for a case's first events, stored in the transaction that stores them
        #: (``seal_new_keys``): a key of its own costs a new case no commit of its own.
        self._new: dict[UUID, tuple[str, AESGCMCipher]] = {}
        self._lock = threading.Lock()

    def cipher(self, case_id: UUID, *, create: bool) -> AESGCMCipher | None:
        """The case's cipher. Without ``create``, None for a case that never had a key (events
        stored before case keys existed). Raises ``CaseErasedError`` for an erased case. With
        ``create``, a new case's key is made here and stored with its first events."""
        with self._lock:
            cached = self._cache.get(case_id)
            if cached is not None:
                self._cache.move_to_end(case_id)
            new = self._new.get(case_id)
        if cached is _ERASED:
            raise CaseErasedError(case_id)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        if new is not None and create:
            return new[1]  # not yet stored: only to seal, never to read
        found = self._keys.case_key(case_id)
        if found is None and create:
            key = AESGCMCipher.create_key(32)
            cipher = AESGCMCipher.of_key(key)
            with self._lock:
                made = self._new.setdefault(case_id, (self._wrap(key), cipher))
            return made[1]
        if found is None:
            return None
        wrapped, erased = found
        if erased or wrapped is None:
            self._remember(case_id, _ERASED)
            raise CaseErasedError(case_id)
        cipher = AESGCMCipher.of_key(self._unwrap(wrapped))
        self._remember(case_id, cipher)
        return cipher

    def prefetch(self, case_ids: Iterable[Any], batch: int = 500) -> None:
        """Bring the keys of many cases into the cache in few queries, before a bulk read (the
        relay, a projection) decrypts their events one by one."""
        with self._lock:
            missing = list(
                dict.fromkeys(i for i in case_ids if isinstance(i, UUID) and i not in self._cache)
            )
        for start in range(0, len(missing), batch):
            found = self._keys.case_keys(missing[start : start + batch])
            for case_id, (wrapped, erased) in found.items():
                if erased or wrapped is None:
                    self._remember(case_id, _ERASED)
                else:
                    self._remember(case_id, AESGCMCipher.of_key(self._unwrap(wrapped)))

    def seal_new_keys(self, cursor: Any, stored_events: Iterable[StoredEvent]) -> None:
        """Inside the transaction that stores ``stored_events``: store the keys made for their
        cases' first events. Where another process stored a different key for the case first,
        raise ``IntegrityError`` (the transaction rolls back, the command is retried, the stored
        key is used): no event is ever sealed under a key that is not the stored one."""
        case_ids = {e.originator_id for e in stored_events if isinstance(e.originator_id, UUID)}
        with self._lock:
            new = {case_id: self._new[case_id] for case_id in case_ids if case_id in self._new}
        for case_id, (wrapped, _) in new.items():
            if self._keys.add_case_key_in(cursor, case_id, wrapped) != wrapped:
                with self._lock:
                    self._new.pop(case_id, None)
                raise IntegrityError(f"case {case_id} got its key elsewhere at the same moment")

    def keys_stored(self, case_ids: Iterable[UUID]) -> None:
        """The transaction committed: the new keys of these cases are stored keys now."""
        with self._lock:
            for case_id in case_ids:
                new = self._new.pop(case_id, None)
                if new is not None:
                    self._cache[case_id] = new[1]

    def refresh(self, case_id: UUID) -> None:
        """Ask the store now whether the case was erased: another replica on the same database
        may have erased it since this process cached its key. One query by primary key; the
        cached cipher saves only the unwrapping."""
        with self._lock:
            if case_id in self._new:
                return  # made here for events not stored yet
        found = self._keys.case_key(case_id)
        if found is None:
            return
        wrapped, erased = found
        if erased or wrapped is None:
            self._remember(case_id, _ERASED)
        elif self._cache.get(case_id) is None:
            self._remember(case_id, AESGCMCipher.of_key(self._unwrap(wrapped)))

    def is_erased(self, case_id: UUID) -> bool:
        """Whether the case was erased, as the store says now (``refresh``)."""
        self.refresh(case_id)
        return self.known_erased(case_id)

    def known_erased(self, case_id: UUID) -> bool:
        """Whether the case was erased, as this process knows it (after a ``prefetch``)."""
        try:
            self.cipher(case_id, create=False)
        except CaseErasedError:
            return True
        return False

    def erase(self, case_ids: Iterable[UUID], at: datetime) -> None:
        for case_id in case_ids:
            self._keys.erase_case_key(case_id, at)
            self._remember(case_id, _ERASED)

    def forget(self, case_ids: Iterable[UUID]) -> None:
        """The keys were shredded (in the transaction that recorded the erasure)."""
        for case_id in case_ids:
            self._remember(case_id, _ERASED)

    def _remember(self, case_id: UUID, value: Any) -> None:
        with self._lock:
            self._cache[case_id] = value
            self._cache.move_to_end(case_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _wrap(self, key: str) -> str:
        if self._wrapper is None:
            return key
        return b64encode(self._wrapper.encrypt(key.encode())).decode()

    def _unwrap(self, wrapped: str) -> str:
        if self._wrapper is None:
            return wrapped
        return self._wrapper.decrypt(b64decode(wrapped)).decode()


class CaseKeyMapper(Mapper[UUID]):
    """eventsourcing's mapper, with each case's events sealed again under the case's key.

    eventsourcing has one cipher per application (docs/architecture.md, "Erasure"), so the
    library's mapper does its work (transcoding, compression, the service's cipher) and this one
    adds the case layer around the result: ``CASE_KEY_PREFIX + case_cipher.encrypt(state)``."""

    keyring: CaseKeyring | None = None
    shared_ids: frozenset[UUID] = frozenset()

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        stored = super().to_stored_event(domain_event)
        case_id = stored.originator_id
        if self.keyring is None or not isinstance(case_id, UUID) or case_id in self.shared_ids:
            return stored
        cipher = self.keyring.cipher(case_id, create=True)
        assert cipher is not None
        return StoredEvent(
            originator_id=stored.originator_id,
            originator_version=stored.originator_version,
            topic=stored.topic,
            state=CASE_KEY_PREFIX + cipher.encrypt(stored.state),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        originator_id = stored_event.originator_id
        if (
            self.keyring is not None
            and isinstance(originator_id, UUID)
            and originator_id not in self.shared_ids
        ):
            cipher = self.keyring.cipher(originator_id, create=False)  # raises when erased
            if stored_event.state.startswith(CASE_KEY_PREFIX):
                if cipher is None:  # sealed under a key that is gone: as good as erased
                    raise CaseErasedError(originator_id)
                stored_event = StoredEvent(
                    originator_id=originator_id,
                    originator_version=stored_event.originator_version,
                    topic=stored_event.topic,
                    state=cipher.decrypt(stored_event.state[len(CASE_KEY_PREFIX) :]),
                )
        return super().to_domain_event(stored_event)
