"""Readings from outside the poll, taken on the HTTP server's threads (the phone relay,
provider webhooks).

Each thread has a `Store` of its own (the store's concurrency contract). Readings go
through one `Checker` of the recorder's own (`Checker.record`: judged and written as a
polled check, guarded against the loop's writes of the same line), one at a time: pushes
come now and then, and the checker's account breakers and recharge worker are then only
ever touched by one thread. A reload replaces the checker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from monitor.config import Settings
from monitor.cycle import Checker
from monitor.store import Store


class _Closable(Protocol):
    def close(self) -> None: ...


_C = TypeVar("_C", bound=_Closable)


class Recorder:
    def __init__(self, settings: Settings, database: Path) -> None:
        self.database = database
        self._local = threading.local()
        self._opened: list[_Closable] = []
        self._lock = threading.Lock()
        self._recording = threading.Lock()
        """Held while a reading is judged and written, and while the config is swapped."""
        self._checker: Checker | None = None
        self.settings = settings

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        """A reload's config, and a checker for it (the old one closed)."""
        with self._recording:
            self._settings = settings
            self._configured(settings)
            old, self._checker = self._checker, None
        if old is not None:
            old.close()

    def _configured(self, settings: Settings) -> None:
        """What a recorder derives from its config; runs under the recording lock."""

    def _checker_now(self) -> Checker:
        """The checker, made on first use; call it holding the recording lock."""
        if self._checker is None:
            self._checker = Checker(self._settings)
        return self._checker

    def _per_thread(self, name: str, opener: Callable[[Path], _C]) -> _C:
        """This thread's own connection `name`, opened on first use, closed by `close`."""
        item: _C | None = getattr(self._local, name, None)
        if item is None:
            item = opener(self.database)
            setattr(self._local, name, item)
            with self._lock:
                self._opened.append(item)
        return item

    def _store(self) -> Store:
        return self._per_thread("store", Store.open)

    def close(self, wait: float = 5.0) -> None:
        """After the server's threads ended: the checker (a top-up under way gets `wait`
        seconds) and their connections."""
        with self._recording:
            checker, self._checker = self._checker, None
        if checker is not None:
            checker.close(wait=wait)
        with self._lock:
            opened, self._opened = self._opened, []
        for item in opened:
            item.close()
