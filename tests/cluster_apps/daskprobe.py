"""What the Dask tests run on a worker: its pid, the version ``logic`` runs, the epoch and a
per-process counter (state a release keeps)."""

import os

import logic

import hotswap


def probe() -> dict:
    return {
        "pid": os.getpid(),
        "version": logic.version(),
        "epoch": hotswap.status().epoch,
        "count": logic.hit(),
    }


def relax() -> str:
    """This worker accepts breaking changes (the others keep the default, strict)."""
    return hotswap.configure(policy="warn").policy


def doom() -> bool:
    """This worker's next run of ``logic``'s top level fails (see FAILING in the tests)."""
    import builtins

    builtins.hotswap_test_doomed = True  # type: ignore[attr-defined]
    return True


def in_canary() -> list:
    """The version a plain call runs and the one a canary unit (weight 1.0: the candidate) runs."""
    plain = logic.version()
    with hotswap.canary_scope("probe"):
        scoped = logic.version()
    return [plain, scoped]
