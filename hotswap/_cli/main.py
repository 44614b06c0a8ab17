"""The ``hotswap`` command: ``run`` a program with hot reloading, see a ``demo``, or ``sign``
files for ``require_signature``.

The only place in the package that prints: status lines go to stderr through the ``hotswap``
logger, which this module configures; the library itself attaches no handlers.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import queue
import shutil
import signal
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import hotswap
from hotswap._cli import fleet as _fleet_cli
from hotswap._cli import restart as _restart
from hotswap._cli import runner as _runner
from hotswap._cli.runner import Target
from hotswap._config.settings import POLICIES
from hotswap._ops import console as _console
from hotswap._ops.events import describe

__all__ = ("main",)


RUN_EPILOG = """\
what it does:
  Saved edits go live in the running process, each with one status line on stderr:
    shop: v3 live, ~price (L12-18), +refund (L40) (1.2 ms)
  (+ added, ~ changed, - removed, ! replaced; then the lines of each definition). A rejected
  edit says why, with file and line, and the last good code keeps running. __main__ gets
  changed functions and classes; its top-level statements do not run again.

crashes (--keep-alive):
  When an exception escapes the program's entry (the script, or the -m module's main), its
  traceback is printed, the process and its imports stay, and after the next save that
  applies cleanly the entry runs again. stdin is never read.

restarts:
  What cannot be applied in place restarts the program: a changed C extension (.so/.pyd)
  under the watched paths, a changed pyproject.toml or requirements*.txt (then hotswap itself
  starts again, since the dependencies may be new), a file matching --restart-on, or, with
  [tool.hotswap] restart_on_failure = true (or HOTSWAP_RESTART_ON_FAILURE=1), a failed
  reload (except a syntax error). hotswap keeps a warm template process that imported the
  program's third-party dependencies and forks each run from it, so a restart costs
  milliseconds, not a cold start; where forking is unsafe (a dependency started threads at
  import, or no fork() on this platform) each run is a new interpreter. Each restart says
  why. --no-restart runs the program in this process, without any of this.

output:
  Status lines are coloured when stderr is a terminal and NO_COLOR is not set. -q shows
  failures only; -v adds times and details.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotswap",
        description="Run Python programs that pick up edits to their source as they run.",
    )
    parser.add_argument("--version", action="version", version=f"hotswap {hotswap.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run a script or module with hot reloading",
        description="Run a program with hot reloading: saved edits go live in the running "
        "process, without a restart and without losing its state.",
        usage="hotswap run [options] (script.py | -m module) [args...]",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("-m", dest="module", help="run a module, as python -m does")
    run.add_argument(
        "--watch",
        action="append",
        metavar="PATH",
        help="a file or folder to watch (repeatable; default: the script's folder, or the "
        "current folder with -m)",
    )
    run.add_argument("--policy", choices=POLICIES, help="what to do with breaking changes")
    run.add_argument(
        "--keep-alive",
        action="store_true",
        help="after a crash, keep the process and run the entry again once a save applies",
    )
    run.add_argument(
        "--restart-on",
        action="append",
        metavar="GLOB",
        default=[],
        help="restart the program when a file matching GLOB changes (repeatable; matched "
        "against the path relative to the current folder and against the file name)",
    )
    run.add_argument(
        "--no-restart",
        action="store_true",
        help="run in this process: no template, no restarts",
    )
    loudness = run.add_mutually_exclusive_group()
    loudness.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const=-1,
        default=0,
        help="show failures only",
    )
    loudness.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="store_const",
        const=1,
        help="show times and details too",
    )
    run.add_argument("--control-fd", type=int, help=argparse.SUPPRESS)
    run.add_argument("args", nargs=argparse.REMAINDER, help="the script and its arguments")
    commands.add_parser(
        "demo",
        help="watch hotswap apply, reject and roll back edits in a running program",
        description="A self-contained demonstration in a temporary folder (a few seconds).",
    )
    sign = commands.add_parser(
        "sign",
        help="write FILE.sig beside each file, for require_signature",
        description="Sign the exact bytes of each file with an Ed25519 private key (PEM or "
        "OpenSSH, unencrypted) and write FILE.sig beside it.",
    )
    sign.add_argument("files", nargs="+", metavar="FILE", help="the files to sign")
    sign.add_argument("--key", required=True, metavar="PRIVATE", help="the private key file")
    _fleet_cli.add_parser(commands)
    return parser


def _target(options: argparse.Namespace) -> Target | None:
    """What to run, checked; None after printing why it cannot run."""
    args: list[str] = list(options.args)
    if args and args[0] == "--":
        args = args[1:]
    if options.module is None and not args:
        print("hotswap run: name a script, or a module with -m", file=sys.stderr)
        return None
    watch = [os.path.abspath(p) for p in options.watch or ()]
    common = {"policy": options.policy, "keep_alive": options.keep_alive}
    if options.module is not None:
        # Only the top-level name is looked up here: finding a submodule would import its
        # packages into this process, which may become the template of every run.
        try:
            found = importlib.util.find_spec(options.module.split(".", 1)[0])
        except (ImportError, ValueError):
            found = None
        if found is None:
            print(f"hotswap run: no module named {options.module!r}", file=sys.stderr)
            return None
        return Target(None, options.module, args, watch or [os.getcwd()], **common)
    script = os.path.abspath(args[0])
    if not os.path.isfile(script):
        print(f"hotswap run: {args[0]}: no such file", file=sys.stderr)
        return None
    return Target(script, None, args[1:], watch or [os.path.dirname(script)], **common)


def _child_command(
    options: argparse.Namespace, target: Target
) -> Callable[[int | None], list[str]]:
    """The command that runs one run of the program in a new interpreter."""

    def command(fd: int | None) -> list[str]:
        line = [sys.executable, "-m", "hotswap", "run", "--no-restart"]
        if fd is not None:
            line += ["--control-fd", str(fd)]
        for path in target.watch:
            line += ["--watch", path]
        if target.policy is not None:
            line += ["--policy", target.policy]
        if target.keep_alive:
            line.append("--keep-alive")
        if options.verbosity:
            line.append("-q" if options.verbosity < 0 else "-v")
        if target.module is not None:
            return [*line, "-m", target.module, "--", *target.args]
        return [*line, target.script or "", *target.args]

    return command


def _run(options: argparse.Namespace) -> int:
    if options.no_restart and options.restart_on:
        print("hotswap run: --restart-on needs restarts; drop --no-restart", file=sys.stderr)
        return 2
    target = _target(options)
    if target is None:
        return 2
    _console.setup(options.verbosity)
    target.prepare()
    if options.control_fd is not None:
        # A run started by a supervisor: Ctrl-C is the program's, though the supervisor
        # ignores it (and an ignored signal stays ignored across exec).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return _runner.run(target, _restart.control_writer(options.control_fd))
    if options.no_restart:
        return _runner.run(target)
    supervisor = _restart.Supervisor(target, options.restart_on, _child_command(options, target))
    supervisor.warm()
    try:
        return supervisor.run()
    except _restart.ChildExit as done:  # a forked run of the program ended
        return done.code


_DEMO_V1 = """
def price(amount, currency="EUR"):
    return f"{amount:.2f} {currency}"
"""


def _demo() -> int:
    # The demo prints each result itself; keep the library's log lines out of its narration.
    logger = logging.getLogger("hotswap")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    folder = Path(tempfile.mkdtemp(prefix="hotswap-demo-"))
    source = folder / "shop.py"
    source.write_text(_DEMO_V1)
    sys.path.insert(0, str(folder))
    import shop  # type: ignore[import-not-found]

    results: queue.Queue[hotswap.ReloadResult] = queue.Queue()
    served: dict[str, str] = {"last": shop.price(10)}
    stop = threading.Event()

    def serve() -> None:  # the running program: a request loop that never restarts
        while not stop.is_set():
            served["last"] = shop.price(10)
            stop.wait(0.001)

    def say(text: str) -> None:
        print(textwrap.fill(text, 88, subsequent_indent="   "))

    def edit(text: str) -> hotswap.ReloadResult | None:
        source.write_text(textwrap.dedent(text))
        try:
            result = results.get(timeout=10)
        except queue.Empty:
            print("   !! no reload within 10 s")
            return None
        print(f"   {describe(result)}")
        return result

    def serving(expected: str) -> bool:
        deadline = time.monotonic() + 5
        while served["last"] != expected and time.monotonic() < deadline:
            stop.wait(0.005)
        print(f"   the server answers price(10) -> {served['last']!r}")
        return served["last"] == expected

    server = threading.Thread(target=serve, name="demo-server", daemon=True)
    server.start()
    hotswap.enable([str(folder)], on_reload=results.put)
    ok = True
    try:
        say(f"A program serves requests from {source}, in a loop that never restarts.")
        ok &= serving("10.00 EUR")
        say("1. Edit the body (add 20% VAT) and save: the next call runs the new code.")
        edit(_DEMO_V1.replace('f"{amount:.2f}', 'f"{amount * 1.2:.2f}'))
        ok &= serving("12.00 EUR")
        say("2. Save a syntax error: rejected before anything runs; the old code keeps serving.")
        bad = edit(_DEMO_V1.replace("def price(amount,", "def price(amount"))
        ok &= bad is not None and not bad.ok and serving("12.00 EUR")
        say("3. Drop the 'currency' parameter callers pass: refused as an incompatible change.")
        refused = edit(_DEMO_V1.replace(', currency="EUR"', "").replace("{currency}", "EUR"))
        ok &= refused is not None and not refused.ok and serving("12.00 EUR")
        say("4. Roll back to the version before the VAT edit.")
        result = hotswap.rollback("shop", to=1)
        print(f"   {describe(result)}")
        ok &= result.ok and serving("10.00 EUR")
        status = hotswap.status().modules["shop"]
        say(
            f"The program never stopped. shop is at version {status.version}; kept: "
            f"{', '.join(map(str, status.history))}."
        )
    finally:
        stop.set()
        hotswap.disable()
        server.join(5)
        sys.path.remove(str(folder))
        shutil.rmtree(folder, ignore_errors=True)  # the demo leaves nothing behind
    print("demo finished" if ok else "demo FAILED", file=sys.stderr if not ok else sys.stdout)
    return 0 if ok else 1


def _sign(options: argparse.Namespace) -> int:
    from hotswap._plan.signing import sign_file

    for file in options.files:
        try:
            written = sign_file(file, options.key)
        except (OSError, ValueError, TypeError, ImportError) as error:
            print(f"hotswap sign: {file}: {error}", file=sys.stderr)
            return 1
        print(f"signed {file} -> {written}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hotswap`` console script and ``python -m hotswap``."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    tail: list[str] = []
    if arguments[:1] == ["run"]:
        # As with python -m, everything after the module is the module's (flask --app main
        # run): argparse would otherwise read its options as hotswap's.
        for index, argument in enumerate(arguments):
            if argument == "-m" and index + 1 < len(arguments):
                arguments, tail = arguments[: index + 2], arguments[index + 2 :]
                break
    options = _parser().parse_args(arguments)
    if tail:
        options.args = [*options.args, *tail]
    if options.command == "run":
        return _run(options)
    if options.command == "sign":
        return _sign(options)
    if options.command == "fleet":
        return _fleet_cli.run(options)
    return _demo()
