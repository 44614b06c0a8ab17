"""What the Ray tests run in a worker process: a task that reports its process, and an actor
with state (a counter a release must keep)."""

import os

import logic
import ray

import hotswap


def report() -> dict:
    return {
        "pid": os.getpid(),
        "version": logic.version(),
        "epoch": hotswap.status().epoch,
        "count": logic.hit(),
        "scoped": scoped(),
    }


def scoped() -> str:
    """The version a canary unit runs (the candidate at weight 1.0)."""
    with hotswap.canary_scope("probe"):
        return logic.version()


@ray.remote
def probe(_: int = 0) -> dict:
    return report()


@ray.remote
class Keeper:
    """An actor: its own counter (state kept across a release) and the version it was built by."""

    def __init__(self) -> None:
        self.calls = 0
        self.built_by = logic.version()

    def probe(self) -> dict:
        self.calls += 1
        return {**report(), "calls": self.calls, "built_by": self.built_by}

    def relax(self) -> str:
        """This process accepts breaking changes (the others keep the default, strict)."""
        return hotswap.configure(policy="warn").policy
