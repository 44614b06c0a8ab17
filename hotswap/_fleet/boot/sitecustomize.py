"""Put first on ``PYTHONPATH`` by ``hotswap run`` (hotswap/_fleet/__init__.py): a
``multiprocessing`` spawn child (``uvicorn --workers``, a spawn pool) joins its parent's fleet
before it imports any of the program's modules. Any other ``sitecustomize`` on the path runs
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


def _join() -> None:
    if "--multiprocessing-fork" not in sys.argv or not os.environ.get("HOTSWAP_FLEET"):
        return
    try:
        from hotswap import _fleet
    except ImportError:  # hotswap is not importable here (another environment)
        return
    _fleet.join()


_chain()
_join()
