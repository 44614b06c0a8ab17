"""The module the fleet tests edit: a version to read, and a per-worker counter (state a
reload must keep)."""

COUNT = {"n": 0}


def version():
    return "v1"


def hit():
    COUNT["n"] += 1
    return COUNT["n"]
