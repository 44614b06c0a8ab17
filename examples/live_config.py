"""A live configuration file: edits go live validated, bad ones are refused, versions roll back.

Run it with ``python examples/live_config.py``; it works in a temporary folder.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import hotswap


@dataclasses.dataclass(frozen=True)
class Limits:
    rate: int
    burst: int = 10


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    limits: Limits


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="hotswap-config-") as folder:
        return run(Path(folder) / "app.toml")


def run(path: Path) -> int:
    path.write_text('name = "shop"\n[limits]\nrate = 100\n')

    def rebuild_limiter(old: Config, new: Config) -> None:
        if new.limits.rate > 10_000:
            message = f"the limiter cannot take {new.limits.rate} requests/s"
            raise ValueError(message)
        print(f"  limiter rebuilt: {old.limits.rate} -> {new.limits.rate} requests/s")

    def edit(text: str) -> None:
        print(f"edit: {text!r}")
        path.write_text(text)
        # The watch applies a save by itself within milliseconds; reload() does the same now,
        # so that this demo prints in order.
        config.reload()

    config = hotswap.live_config(path, schema=Config, on_change=rebuild_limiter, watch=False)
    with config:
        print(f"loaded v{config.version}: {config.value}")
        edit('name = "shop"\n[limits]\nrate = 200\n')
        edit('name = "shop"\n[limits]\nrate = "fast"\n')  # wrong type: refused
        print(f"  still v{config.version}: {config.last_error}")
        edit('name = "shop"\n[limits]\nrate = 50000\n')  # the callback refuses it
        print(f"  still v{config.version}: {config.last_error}")
        print(f"rollback -> {config.rollback()}")
        print(f"v{config.version} live, history {config.history}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
