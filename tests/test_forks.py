"""A fork never leaves the child a module that one of hotswap's threads was half way through
importing (the child would wait for its import lock forever: a gunicorn worker that never
answered, seen on 3.14t when the fleet listener's handshake imported ``hmac`` in the arbiter
while the arbiter forked the next worker).

Each case runs in its own interpreter, which forks once; the child is stopped by its PID if it
hangs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="os.fork")

SLOW_MODULE = """
import builtins
entered, gate = builtins.HOTSWAP_TEST_GATE
entered.set()
gate.wait()
VALUE = 1
"""

# Scripts' helpers: whether the main thread waits in hotswap's fork hook; the parent's wait
# for its child, which it stops by its PID when it hangs.
IN_HOOK = """
main = threading.get_ident()

def wait_for_child(pid, seconds, where):
    deadline = time.monotonic() + seconds
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            print("child: hung " + where, flush=True)
            sys.exit(1)
        time.sleep(0.01)

def waiting_in_hook():
    frame = sys._current_frames().get(main)
    while frame is not None:
        if frame.f_code.co_name == "_before_fork":
            return True
        frame = frame.f_back
    return False
"""

SCRIPT = (
    """
import builtins, os, signal, sys, threading, time
sys.path.insert(0, sys.argv[1])
import hotswap
from hotswap._ops import forks

forks.WAIT = float(sys.argv[2])
entered, gate, forked = threading.Event(), threading.Event(), threading.Event()
builtins.HOTSWAP_TEST_GATE = (entered, gate)
threading.Thread(target=lambda: __import__("slow"), name=sys.argv[3], daemon=True).start()
entered.wait()
"""
    + IN_HOOK
    + """
child_imports = sys.argv[4] == "import"

def open_gate():
    # Once the fork waits in hotswap's hook (unless the child stays away from the module),
    # or once it happened.
    while not forked.is_set() and not (child_imports and waiting_in_hook()):
        time.sleep(0.001)
    gate.set()

threading.Thread(target=open_gate, daemon=True).start()
pid = os.fork()
if pid == 0:
    if child_imports:
        import slow
        os.write(1, b"child: slow.VALUE=%d\\n" % slow.VALUE)
    os._exit(0)
forked.set()
wait_for_child(pid, float(sys.argv[5]), "in its import")
print("parent: done", flush=True)
"""
)


def run(
    tmp_path: Path, wait: float, thread: str, child: str, hang: float = 60.0
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "slow.py").write_text(SLOW_MODULE)
    script = tmp_path / "fork.py"
    script.write_text(textwrap.dedent(SCRIPT))
    return subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(wait), thread, child, str(hang)],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )


def test_a_fork_waits_for_hotswaps_thread_to_finish_its_import(tmp_path: Path) -> None:
    done = run(tmp_path, 30.0, "hotswap-fleet-listener", "import")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "child: slow.VALUE=1" in done.stdout
    assert "still importing" not in done.stderr


def test_a_fork_waits_a_bounded_time_and_says_which_thread(tmp_path: Path) -> None:
    # The import outlasts the wait (the gate opens only once the fork happened): the fork goes
    # on, and the log names the thread. This child stays away from the half-done module.
    done = run(tmp_path, 0.2, "hotswap-worker", "exit")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "parent: done" in done.stdout
    assert "hotswap-worker is still importing after 0.2 s" in done.stderr


def test_the_programs_own_threads_are_not_waited_for(tmp_path: Path) -> None:
    # Not hotswap's thread: the fork does not wait, and the child that imports the half-done
    # module hangs for good (CPython's behaviour: 5 s stand for ever here), which shows the
    # first test cannot pass without hotswap's hook.
    done = run(tmp_path, 30.0, "program-thread", "import", hang=5.0)
    assert done.returncode == 1
    assert "child: hung in its import" in done.stdout


LOCK_SCRIPT = (
    """
import os, signal, sys, threading, time
import hotswap
from hotswap._config import settings
from hotswap._ops import forks

forks.WAIT = float(sys.argv[1])
held, forked = threading.Event(), threading.Event()
"""
    + IN_HOOK
    + """
def hold():
    # hotswap's thread holds the settings' lock until the fork waits for it, or (argv[2]
    # "past") until the fork happened.
    with settings._lock:
        held.set()
        while not forked.is_set() and not (sys.argv[2] == "short" and waiting_in_hook()):
            time.sleep(0.001)

threading.Thread(target=hold, name="hotswap-fleet-join", daemon=True).start()
held.wait()
pid = os.fork()
if pid == 0:
    settings.current()  # what a forked fleet worker does first as it joins
    settings.current()
    os.write(1, b"child: read the settings\\n")
    os._exit(0)
forked.set()
wait_for_child(pid, 60, "on the settings' lock")
settings.current()  # the parent's lock is free again too
print("parent: done", flush=True)
"""
)


@pytest.mark.parametrize(
    ("held", "wait", "warned"),
    [("short", 30.0, False), ("past", 0.2, True)],
    ids=["released-while-the-fork-waits", "held-past-the-wait"],
)
def test_a_child_never_inherits_a_hotswap_lock_held_by_another_thread(
    tmp_path: Path, held: str, wait: float, warned: bool
) -> None:
    # A gunicorn worker forked while the arbiter's thread welcoming the previous worker held
    # the settings' lock waited for it for ever as it joined the fleet. The fork takes the lock
    # (waiting for its holder), or gives the child a free one when the wait runs out.
    script = tmp_path / "fork_lock.py"
    script.write_text(textwrap.dedent(LOCK_SCRIPT))
    done = subprocess.run(
        [sys.executable, str(script), str(wait), held],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "child: read the settings" in done.stdout
    assert "parent: done" in done.stdout
    assert ("holds hotswap's settings lock after 0.2 s" in done.stderr) is warned, done.stderr
