from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from shared.application import KringApplication
from shared.settings import ServiceSettings
from shared.store import eventsourcing_env

A = TypeVar("A", bound=KringApplication)


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., Any]:
    """A service application on a real SQLite store in the test's own folder."""
    opened: list[KringApplication] = []

    def make(cls: type[A], **kwargs: Any) -> A:
        settings = ServiceSettings(service_name=cls.name, data_dir=tmp_path)
        app = cls(env=eventsourcing_env(settings), **kwargs)
        opened.append(app)
        return app

    yield make
    for app in opened:
        app.close()
