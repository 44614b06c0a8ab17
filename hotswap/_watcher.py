"""The watchdog observer, event filtering and debouncing; the only importer of watchdog."""

from __future__ import annotations

__all__ = ("is_running",)


def is_running() -> bool:
    """Whether the watcher runs."""
    return False
