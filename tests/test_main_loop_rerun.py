"""The README's program shape (a bare ``while True:`` loop in ``__main__``, issue 24): once the
loop is recorded as running it never runs on a reload, whatever was saved since, and the
watcher goes on applying later saves (DESIGN §5.6, §5.8)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.watcher

# The loop writes which thread runs it: a reload that ran it again would run it on the
# hotswap-worker thread (and never return from it).
PROGRAM = textwrap.dedent(
    """
    import pathlib
    import sys
    import threading
    import time

    import helper
    {enable}
    OUT = pathlib.Path(sys.argv[1])

    def tick():
        return "a"

    calls = 0
    while not OUT.with_suffix(".stop").exists():
        calls += 1
        if threading.current_thread() is not threading.main_thread():
            OUT.with_suffix(".wrong").write_text(threading.current_thread().name)
        OUT.write_text(f"{{tick()}} {{helper.VALUE}} loop1")
        time.sleep(0.005)
    """
)

ENABLE = textwrap.dedent(
    """
    import hotswap

    def _said(result):
        with open(sys.argv[1] + ".log", "a") as log:
            log.write(f"{result.module} {result.kind} {[s.reason for s in result.skipped]}\\n")

    hotswap.enable(on_reload=_said)
    """
)


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll a condition on the program's files (the program runs in another process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


class Running:
    """A program started in its own process, stopped through its stop file, then by PID."""

    def __init__(self, args: list[str], folder: Path) -> None:
        self.folder = folder
        self.process = subprocess.Popen(
            args, cwd=folder, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(
            target=lambda: self.lines.extend(self.process.stderr or ()), daemon=True
        )
        self.reader.start()

    def stop(self) -> None:
        (self.folder / "out.stop").touch()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.reader.join(10)
        assert self.process.stderr is not None
        self.process.stderr.close()


@pytest.fixture(params=["hotswap-run", "python-enable"])
def program(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Running, Path]]:
    script = tmp_path / "app.py"
    (tmp_path / "helper.py").write_text("VALUE = 1\n")
    out = tmp_path / "out.txt"
    if request.param == "hotswap-run":
        script.write_text(PROGRAM.format(enable=""))
        args = [sys.executable, "-m", "hotswap", "run", str(script), str(out)]
    else:
        script.write_text(PROGRAM.format(enable=ENABLE))
        args = [sys.executable, str(script), str(out)]
    running = Running(args, tmp_path)
    try:
        yield running, script
    finally:
        running.stop()


def test_main_loop_edited_then_a_function_above_it_never_reruns_the_loop(program, tmp_path):
    running, script = program
    out = tmp_path / "out.txt"
    log = tmp_path / "out.txt.log"

    def skipped() -> bool:
        return "running since line" in "".join(running.lines) + read(log)

    assert wait_for(lambda: read(out) == "a 1 loop1"), read(out)
    first = script.read_text()
    # 1. Edit the running loop: reported, not applied.
    loop_edited = first.replace("loop1", "loop2")
    script.write_text(loop_edited)
    assert wait_for(skipped), running.lines
    # 2. Edit a function above the loop: it applies, and the loop does not run again.
    script.write_text(loop_edited.replace('return "a"', 'return "b"'))
    assert wait_for(lambda: read(out) == "b 1 loop1"), read(out)
    # 3. The watcher is not wedged: later saves of this file and of another one apply.
    (tmp_path / "helper.py").write_text("VALUE = 2\n")
    assert wait_for(lambda: read(out) == "b 2 loop1"), read(out)
    script.write_text(loop_edited.replace('return "a"', 'return "c"'))
    assert wait_for(lambda: read(out) == "c 2 loop1"), read(out)
    # 4. Saved back to the text the loop started from, then another function edit.
    script.write_text(first.replace('return "a"', 'return "d"'))
    assert wait_for(lambda: read(out) == "d 2 loop1"), read(out)
    assert not (tmp_path / "out.wrong").exists(), read(tmp_path / "out.wrong")


def test_main_loop_moved_by_statements_inserted_above_never_reruns(program, tmp_path):
    running, script = program
    out = tmp_path / "out.txt"
    assert wait_for(lambda: read(out) == "a 1 loop1"), read(out)
    first = script.read_text()
    # The loop edited and a new function above it in one save, then that function edited.
    both = first.replace("loop1", "loop2").replace(
        "calls = 0", "def extra():\n    return 1\n\ncalls = 0"
    )
    script.write_text(both)
    assert wait_for(
        lambda: "running since line" in "".join(running.lines) + read(tmp_path / "out.txt.log")
    )
    script.write_text(both.replace("return 1", "return 2").replace('return "a"', 'return "e"'))
    assert wait_for(lambda: read(out) == "e 1 loop1"), read(out)
    assert not (tmp_path / "out.wrong").exists(), read(tmp_path / "out.wrong")
