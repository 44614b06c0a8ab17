"""Put first on ``PYTHONPATH`` by ``hotswap run`` (hotswap/_fleet/__init__.py): a
``multiprocessing`` spawn child (``uvicorn --workers``, a spawn pool) joins its parent's fleet
before it imports any of the program's modules, and a forkserver's workers join as they are
forked. Any other ``sitecustomize`` on the path runs
first, as it would have without this one; other interpreters are left alone.
"""

import importlib.machinery
import importlib.util
import os
import sys


def _chain() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    others = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", others)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    vars(sys.modules[__name__]).update(
        {k: v for k, v in vars(module).items() if not k.startswith("__")}
    )


def _forkserver() -> bool:
    """Whether this interpreter is a ``multiprocessing`` forkserver (the default way of pools
    on Linux from Python 3.14): ``python -c 'from multiprocessing.forkserver import main...'``."""
    argv = list(getattr(sys, "orig_argv", ()))
    if "-c" not in argv or argv.index("-c") + 1 >= len(argv):
        return False
    return "from multiprocessing.forkserver import main" in argv[argv.index("-c") + 1]


def _join() -> None:
    if not os.environ.get("HOTSWAP_FLEET"):
        return
    spawned = "--multiprocessing-fork" in sys.argv
    if not spawned and not _forkserver():
        return
    try:
        from hotswap import _fleet
    except ImportError:  # hotswap is not importable here (another environment)
        return
    if spawned:
        _fleet.join()
    # A forkserver takes no part itself: each worker it forks joins in the fork hook that the
    # import above registered (the program's modules it preloads need not import hotswap).


_chain()
_join()
