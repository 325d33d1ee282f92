"""A read model kept by following the service's own notification log.

eventsourcing has no queries; lists (pending timers, open cases) are projected from the log,
caught up before each read, so they are never behind what was stored and survive restarts by
being rebuilt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from shared.application import KringApplication


class LogProjection:
    def __init__(
        self,
        app: KringApplication,
        apply: Callable[[Any], None],
        topics: Sequence[str] = (),
        page_size: int = 500,
    ) -> None:
        self._app = app
        self._apply = apply
        self._topics = list(topics)
        self._page_size = page_size
        self._up_to = 0
        self._lock = threading.Lock()

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
                for notification in notifications:
                    self._apply(self._app.mapper.to_domain_event(notification))
                    self._up_to = notification.id
