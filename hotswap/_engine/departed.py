"""Forgetting what hotswap kept for modules that are gone.

hotswap keeps, per reloaded module, a record with a bounded history of snapshots; each snapshot
holds every function, class and value the module had. A program that imports modules, reloads
them and drops them (a test runner, a plugin host, a notebook re-importing) would otherwise keep
all of them alive forever: hundreds of such records made full garbage-collector passes take
close to half a second. A record is dropped once its module left ``sys.modules``, or another
module was imported under its name (that one starts a record of its own when reloaded).

The check costs one dictionary lookup per record, so the transaction runs it at every reload.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, MutableMapping
from typing import Any

__all__ = ("forget_departed", "is_loaded")


def is_loaded(name: str, namespace: dict[str, Any]) -> bool:
    """Whether the module ``sys.modules[name]`` is the one whose dict is ``namespace``."""
    module = sys.modules.get(name)
    if module is None:
        return False
    try:
        return vars(module) is namespace
    except Exception:  # something other than a module stands in sys.modules under that name
        return False


def forget_departed(
    records: MutableMapping[str, Any], *, keep: Collection[str] = ()
) -> tuple[str, ...]:
    """Drop the records of modules that are no longer loaded; return their names.

    Args:
        records: module name -> record (anything with a ``namespace`` attribute, the module's
            dict); changed in place.
        keep: names never dropped: the modules of the change set being reloaded right now,
            which may be reloaded by object while not in ``sys.modules``.
    """
    gone = tuple(
        name
        for name, record in list(records.items())
        if name not in keep and not is_loaded(name, record.namespace)
    )
    for name in gone:
        records.pop(name, None)
    return gone
