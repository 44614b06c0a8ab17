"""Generated module sources of a given size, and the scratch folder, shared by the
benchmarks."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def scratch(prefix: str = "hotswap-bench-") -> Iterator[str]:
    """One temporary folder for everything a benchmark run writes, removed at the end, also when
    the run fails: the folders it makes with :mod:`tempfile` and those of the processes it
    starts (pytest's, a server's), which find it through ``TMPDIR``."""
    saved_dir, saved_env = tempfile.tempdir, os.environ.get("TMPDIR")
    with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as root:
        tempfile.tempdir = root
        os.environ["TMPDIR"] = root
        try:
            yield root
        finally:
            tempfile.tempdir = saved_dir
            if saved_env is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = saved_env


def module_source(lines: int, variant: int = 0) -> str:
    """A realistic module of about ``lines`` lines: constants, functions, classes.

    ``variant`` changes the body of one function, so two variants differ by one definition.
    """
    parts = ['"""A generated module."""', "import math", "from dataclasses import dataclass", ""]
    parts.append("RATE = 3\nNAMES = ('a', 'b', 'c')\n")
    parts.append(f"def edited(x):\n    return x * {variant + 1}\n")
    index = 0
    while sum(p.count("\n") + 1 for p in parts) < lines:
        if index % 5 == 4:
            parts.append(
                f"class Model{index}:\n"
                f"    kind = 'm{index}'\n\n"
                f"    def __init__(self, value, *, scale=RATE):\n"
                f"        self.value = value\n"
                f"        self.scale = scale\n\n"
                f"    def total(self, extra=0):\n"
                f"        return self.value * self.scale + extra\n\n"
                f"    @property\n"
                f"    def label(self):\n"
                f"        return f'{{self.kind}}:{{self.value}}'\n\n"
                f"    @staticmethod\n"
                f"    def helper(a, b):\n"
                f"        return math.hypot(a, b)\n"
            )
        else:
            parts.append(
                f"def function_{index}(a, b=1, *args, key=None, **kwargs):\n"
                f"    total = a + b + len(args)\n"
                f"    for name in NAMES:\n"
                f"        if key == name:\n"
                f"            total += 1\n"
                f"    return total * RATE\n"
            )
        index += 1
    return "\n\n".join(parts) + "\n"
