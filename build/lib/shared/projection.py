"""A read model kept by following the service's own notification log.

eventsourcing has no queries; lists (pending timers, open cases) are projected from the log,
caught up before each read, so they are never behind what was stored and survive restarts by
being rebuilt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from shared.application import KringApplication
from shared.erasure import CaseErasedError, ErasureLog

ERASED_TOPIC = get_topic(ErasureLog.CaseErased)


class LogProjection:
    """``apply`` sees every event it can still read, in log order; an erased case's events are
    skipped, and its erasure is handed to ``forget`` so the list drops what it held of it."""

    def __init__(
        self,
        app: KringApplication,
        apply: Callable[[Any], None],
        topics: Sequence[str] = (),
        page_size: int = 500,
        forget: Callable[[UUID], None] | None = None,
    ) -> None:
        self._app = app
        self._apply = apply
        self._forget = forget
        # A filtered projection still hears of erasures.
        self._topics = [*topics, ERASED_TOPIC] if topics else []
        self._page_size = page_size
        self._up_to = 0
        self._lock = threading.Lock()

    @property
    def position(self) -> int:
        """The notification ``apply`` is being handed (while it runs), else the last one read."""
        return self._up_to

    def catch_up(self) -> None:
        with self._lock:
            while True:
                notifications = self._app.recorder.select_notifications(
                    start=self._up_to,
                    limit=self._page_size,
                    topics=self._topics,
                    inclusive_of_start=False,
                )
                if not notifications:
                    return
                self._app.keyring.prefetch(n.originator_id for n in notifications)
                for notification in notifications:
                    self._up_to = notification.id
                    try:
                        event: Any = self._app.mapper.to_domain_event(notification)
                    except CaseErasedError:
                        continue
                    if isinstance(event, ErasureLog.CaseErased):
                        if self._forget is not None:
                            self._forget(event.case_id)
                    else:
                        self._apply(event)
