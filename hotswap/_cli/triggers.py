"""What makes ``hotswap run`` restart the program: files that no reload can apply, polled.

The supervisor polls (stat) rather than watches: a watchdog observer would start threads in the
process every run is forked from, and forking a process with threads is exactly what must not
happen.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import time
from collections.abc import Iterator

__all__ = ("Triggers",)

logger = logging.getLogger(__name__)

_RESCAN = 2.0  # how often new trigger files are looked for (a new build, a new requirements file)
_DEPENDENCY_FILES = ("pyproject.toml", "requirements*.txt")
_EXTENSIONS = (".so", ".pyd")
_SKIP = frozenset({"node_modules", "site-packages", "dist-packages", "__pycache__"})
_MAX_WALK = 20000  # files looked at per scan (a home folder as the working directory...)


class Triggers:
    """Files whose change means a restart, polled.

    Args:
        roots: folders searched (the watched paths and the working directory).
        patterns: ``--restart-on`` globs, matched against the path relative to the working
            directory and against the file name.
    """

    def __init__(self, roots: list[str], patterns: list[str]) -> None:
        self.roots = sorted({os.path.abspath(r) for r in roots})
        self.patterns = patterns
        self._stats: dict[str, tuple[int, int]] = {}
        self._scanned = 0.0
        self._capped = False
        self._rescan()

    def _why(self, path: str) -> str | None:
        name = os.path.basename(path)
        relative = os.path.relpath(path)
        for pattern in self.patterns:
            if fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(name, pattern):
                return f"{relative} changed (--restart-on {pattern})"
        if any(fnmatch.fnmatch(name, p) for p in _DEPENDENCY_FILES):
            return f"{relative} changed: the dependencies may have changed"
        if name.endswith(_EXTENSIONS):
            return f"C extension {relative} changed"
        return None

    def _walk(self) -> Iterator[str]:
        for count, path in enumerate(self._walk_all(), 1):
            if count > _MAX_WALK:
                if not self._capped:
                    self._capped = True
                    logger.info(
                        "hotswap: only the first %d files under %s are looked at for restart "
                        "triggers; name narrower paths with --watch",
                        _MAX_WALK,
                        ", ".join(self.roots),
                    )
                return
            yield path

    def _walk_all(self) -> Iterator[str]:
        for root in self.roots:
            if os.path.isfile(root):
                yield root
                continue
            for folder, subfolders, files in os.walk(root):
                subfolders[:] = [
                    d
                    for d in subfolders
                    if not d.startswith(".")
                    and d not in _SKIP
                    and not os.path.exists(os.path.join(folder, d, "pyvenv.cfg"))
                ]
                for file in files:
                    yield os.path.join(folder, file)

    def _scan(self) -> dict[str, tuple[int, int]]:
        stats = {}
        for path in self._walk():
            if self._why(path) is not None:
                stat = _stat(path)
                if stat is not None:
                    stats[path] = stat
        self._scanned = time.monotonic()
        return stats

    def _rescan(self) -> None:
        self._stats = self._scan()

    def changed(self) -> tuple[str, bool] | None:
        """(why, whether the dependencies changed) when trigger files changed since the last
        call (a new one counts), else None."""
        if time.monotonic() - self._scanned >= _RESCAN:
            current = self._scan()
        else:
            current = {p: s for p in self._stats if (s := _stat(p)) is not None}
        before, self._stats = self._stats, current
        changed = sorted(p for p, stat in current.items() if before.get(p) != stat)
        if not changed:
            return None
        # Files that changed together (a checkout, a build) make one restart.
        verdicts = [self._verdict(path) for path in changed]
        why = "; ".join(reason for reason, _ in verdicts)
        return why, any(stale for _, stale in verdicts)

    def _verdict(self, path: str) -> tuple[str, bool]:
        why = self._why(path) or f"{os.path.relpath(path)} changed"
        return why, any(fnmatch.fnmatch(os.path.basename(path), p) for p in _DEPENDENCY_FILES)


def _stat(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size
