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
import runpy
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import hotswap
from hotswap import _sources
from hotswap._config import POLICIES
from hotswap._events import describe

__all__ = ("main",)


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
        "process; its __main__ gets changed functions and classes, its top-level statements "
        "do not run again.",
        usage="hotswap run [--watch PATH] [--policy POLICY] (script.py | -m module) [args...]",
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
    return parser


def _show_reloads() -> None:
    """One line per reload on stderr: the transaction logs each attempt on 'hotswap'."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("hotswap")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _run(options: argparse.Namespace) -> int:
    args: list[str] = list(options.args)
    if args and args[0] == "--":
        args = args[1:]
    if options.module is None and not args:
        print("hotswap run: name a script, or a module with -m", file=sys.stderr)
        return 2
    _show_reloads()
    if options.module is not None:
        target = options.module
        sys.argv = [target, *args]
        sys.path.insert(0, os.getcwd())
        watch = options.watch or [os.getcwd()]
        # Finding the spec imports the module's parent packages, as running it would: their
        # folders are then watched from the start, not from the watcher's next look around.
        try:
            found = importlib.util.find_spec(target)
        except (ImportError, ValueError):
            found = None
        if found is None:
            print(f"hotswap run: no module named {target!r}", file=sys.stderr)
            return 2
    else:
        script = os.path.abspath(args[0])
        if not os.path.isfile(script):
            print(f"hotswap run: {args[0]}: no such file", file=sys.stderr)
            return 2
        sys.argv = [script, *args[1:]]
        sys.path.insert(0, os.path.dirname(script))
        watch = options.watch or [os.path.dirname(script)]
    hotswap.enable(watch, policy=options.policy)
    try:
        if options.module is not None:
            runpy.run_module(options.module, run_name="__main__", alter_sys=True)
        else:
            # The bytes the script runs from are the live source its first reload diffs with.
            _sources.remember(sys.argv[0], Path(sys.argv[0]).read_bytes())
            runpy.run_path(sys.argv[0], run_name="__main__")
    except KeyboardInterrupt:
        return 130
    finally:
        hotswap.disable()
    return 0


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
    print("demo finished" if ok else "demo FAILED", file=sys.stderr if not ok else sys.stdout)
    return 0 if ok else 1


def _sign(options: argparse.Namespace) -> int:
    from hotswap._signing import sign_file

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
    return _demo()
