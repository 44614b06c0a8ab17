"""hotswap.live_config through the real file watch, and readers racing with swaps."""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import pickle
import threading
import time
from collections.abc import Callable

import pytest

import hotswap
from hotswap._watch.filewatch import FileWatch

TIMEOUT = 10.0


class Changes:
    """Records on_change calls; tests wait on it, never on sleeps."""

    def __init__(self) -> None:
        self.seen: list[tuple[object, object]] = []
        self._cond = threading.Condition()

    def __call__(self, old: object, new: object) -> None:
        with self._cond:
            self.seen.append((old, new))
            self._cond.notify_all()

    def wait_count(self, count: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.seen) >= count, TIMEOUT), self.seen


class ErrorLines(logging.Handler):
    """Collects hotswap's warning and error lines and lets a test wait for one."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self._cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._cond:
            self.lines.append(record.getMessage())
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[str]], bool]) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self.lines), TIMEOUT), self.lines


@pytest.fixture
def error_lines():
    handler = ErrorLines()
    logger = logging.getLogger("hotswap")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.mark.watcher
@pytest.mark.parametrize("save", ["write", "replace"])
def test_live_config_watch_applies_saves(configs, save):
    configs.write("app.toml", "size = 1\n")
    changes = Changes()
    with hotswap.live_config("app.toml", on_change=changes) as config:
        getattr(configs, save)("app.toml", "size = 2\n")
        changes.wait_count(1)
        assert changes.seen == [({"size": 1}, {"size": 2})]
        assert (config.value, config.version) == ({"size": 2}, 2)


@pytest.mark.watcher
def test_live_config_watch_bad_edit_keeps_value(configs, error_lines):
    configs.write("app.json", '{"size": 1}')
    changes = Changes()
    with hotswap.live_config("app.json", on_change=changes) as config:
        configs.write("app.json", '{"size": }')
        error_lines.wait_for(lambda lines: any("app.json:1: invalid JSON" in x for x in lines))
        assert config.value == {"size": 1}
        assert config.last_error is not None
        assert config.last_error.lineno == 1
        configs.write("app.json", '{"size": 3}')
        changes.wait_count(1)
        assert config.version == 2
        assert config.last_error is None


@pytest.mark.watcher
def test_live_config_watch_alongside_enable(configs, project):
    module = project.load("svc", "def f():\n    return 1\n")
    configs.write("app.json", '{"size": 1}')
    results: list[hotswap.ReloadResult] = []
    changes = Changes()
    hotswap.enable([str(project.root), str(configs.root)], on_reload=results.append)
    try:
        path = configs.root / "app.json"  # `project` moved the working directory
        with hotswap.live_config(path, on_change=changes) as config:
            configs.replace("app.json", '{"size": 2}')
            changes.wait_count(1)
            assert config.value == {"size": 2}
            assert results == []  # the source watcher left the JSON file alone
    finally:
        hotswap.disable()
    assert module.f() == 1


@pytest.mark.watcher
def test_file_watch_delivers_complete_content_once(tmp_path):
    target = tmp_path / "data.csv"
    delivered: list[bytes] = []
    cond = threading.Condition()

    def got(path: str, data: bytes) -> None:
        assert path == str(target)
        with cond:
            delivered.append(data)
            cond.notify_all()

    watch = FileWatch([str(target)], got)
    watch.start()
    try:
        (tmp_path / "other.csv").write_text("ignored")
        target.write_text("a,b\n")
        with cond:
            assert cond.wait_for(lambda: delivered, TIMEOUT)
        target.write_text("a,b\n")  # the same content again: nothing new
        temp = tmp_path / "data.csv.tmp"
        temp.write_text("a,b\n1,2\n")
        os.replace(temp, target)
        with cond:
            assert cond.wait_for(lambda: len(delivered) >= 2, TIMEOUT)
        assert delivered == [b"a,b\n", b"a,b\n1,2\n"]
    finally:
        watch.stop()
    assert not watch.running


@dataclasses.dataclass(frozen=True)
class Triple:
    n: int
    same: int
    also: int
    items: tuple[int, ...]


def test_live_config_readers_see_whole_versions_during_swaps(configs):
    def text(n: int) -> str:
        return f"n = {n}\nsame = {n}\nalso = {n}\nitems = [{n}, {n}, {n}]\n"

    configs.write("app.toml", text(0))
    config = hotswap.live_config("app.toml", schema=Triple, watch=False)
    done = threading.Event()
    problems: list[str] = []
    reads = [0] * 3

    def reader(index: int) -> None:
        last = -1
        while not done.is_set():
            value = config.value
            if not value.n == value.same == value.also or value.items != (value.n,) * 3:
                problems.append(f"mixed value {value}")
            if value.n < last:
                problems.append(f"went back from {last} to {value.n}")
            last = value.n
            reads[index] += 1
            time.sleep(0)  # yield the GIL: spinning readers would starve the writer

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(3)]
    for thread in threads:
        thread.start()
    try:
        for n in range(1, 501):
            configs.write("app.toml", text(n))
            assert config.reload()
    finally:
        done.set()
        for thread in threads:
            thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)
    assert problems == []
    assert all(reads)
    assert (config.version, config.value.n) == (501, 500)
    assert len(config.history) == hotswap.configure().history


@pytest.mark.watcher
@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="needs symlinks")
def test_live_config_watch_follows_symlink_swap(configs):
    # The layout a Kubernetes ConfigMap volume has: app.toml -> ..data/app.toml, and an update
    # renames a new ..data link into place; no event names app.toml itself.
    root = configs.root
    for version in ("v1", "v2"):
        (root / version).mkdir()
        (root / version / "app.toml").write_text(f'release = "{version}"\n')
    (root / "..data").symlink_to("v1")
    (root / "app.toml").symlink_to(os.path.join("..data", "app.toml"))
    changes = Changes()
    with hotswap.live_config("app.toml", on_change=changes) as config:
        assert config.value == {"release": "v1"}
        (root / "..data_tmp").symlink_to("v2")
        os.replace(root / "..data_tmp", root / "..data")
        changes.wait_count(1)
        assert config.value == {"release": "v2"}


def test_live_config_unclosed_stops_watching_when_collected(configs):
    configs.write("app.json", "{}")
    config = hotswap.live_config("app.json")
    watch = config._watch
    assert watch.running
    del config
    gc.collect()
    assert not watch.running


def test_config_error_pickles(configs):
    configs.write("app.json", '{"a": ')
    with pytest.raises(hotswap.ConfigError) as raised:
        hotswap.live_config("app.json", watch=False)
    copy = pickle.loads(pickle.dumps(raised.value))
    assert (type(copy), str(copy), copy.filename, copy.lineno, copy.key) == (
        hotswap.ConfigError,
        str(raised.value),
        raised.value.filename,
        1,
        None,
    )
