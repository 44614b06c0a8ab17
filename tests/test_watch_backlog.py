"""The watcher knows when events are on their way to it (``fsfacts.Backlog``), with a real
inotify descriptor of watchdog's: a change set is not cut while the kernel still holds events
of files written before (a checkout's last file, written before git let its index lock go,
came after the set was cut on a loaded machine: the descriptor was looked up before the
observer made it, and the check never saw the kernel's queue)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hotswap._watch.fsfacts import Backlog

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="inotify")


class Ignore:
    """What watchdog calls for a watch's events (this test reads none)."""

    def on_event(self, event: object) -> None:
        pass

    def on_watch_deleted(self, wd: object) -> None:
        pass

    def on_queue_overflow(self) -> None:
        pass


def test_backlog_sees_events_the_kernel_holds_once_the_observer_made_its_descriptor(
    tmp_path: Path,
) -> None:
    from watchdog.observers.inotify import InotifyObserver
    from watchdog.observers.inotify_c import InotifyConstants, InotifyFD

    observer = InotifyObserver()
    backlog = Backlog(observer)  # made before the observer has a descriptor, as the watcher
    assert not backlog.waiting()
    # The descriptor the observer makes when it starts; its reader thread is not started, so
    # what the kernel queues stays there.
    reader = InotifyFD()
    observer._inotify_fd = reader
    try:
        reader.add_callback(bytes(tmp_path), InotifyConstants.IN_CLOSE_WRITE, Ignore(), 1)
        assert not backlog.waiting()
        (tmp_path / "a.py").write_text("A = 1\n")
        assert backlog.waiting()  # in the kernel's queue
    finally:
        reader._is_reading = False  # no reader thread to wake: close the descriptors now
        reader.close()
