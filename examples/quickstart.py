"""Edit a module's source while it runs, and watch hotswap apply, reject and roll back edits.

Run it with ``python examples/quickstart.py``; it works in a temporary folder.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import textwrap
from pathlib import Path

import hotswap


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="hotswap-quickstart-") as folder:
        return run(Path(folder))


def run(folder: Path) -> int:
    source = folder / "pricing.py"
    source.write_text("def total(amount, currency='EUR'):\n    return f'{amount} {currency}'\n")
    sys.path.insert(0, str(folder))
    pricing = importlib.import_module("pricing")
    total = pricing.total  # a reference held elsewhere in the program

    def edit(text: str) -> hotswap.ReloadResult:
        source.write_text(textwrap.dedent(text))
        result = hotswap.reload(pricing)
        print(f"  -> ok={result.ok} version={result.version} {result.changes.summary()}")
        if result.error is not None:
            print(f"     {result.error}")
        return result

    print("live:", total(10))
    print("1. a body change goes live; the held reference runs it")
    edit("def total(amount, currency='EUR'):\n    return f'{amount:.2f} {currency}'\n")
    print("live:", total(10))
    print("2. a syntax error is rejected; the old code keeps serving")
    edit("def total(amount, currency='EUR':\n    return 0\n")
    print("live:", total(10))
    print("3. removing a parameter callers use is refused")
    edit("def total(amount):\n    return str(amount)\n")
    print("live:", total(10))
    print("4. roll back to the version before")
    result = hotswap.rollback(pricing)
    print(f"  -> ok={result.ok} version={result.version}")
    print("live:", total(10))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
