"""A new version of a module read ahead of its reload, outside the reload lock.

Reading a huge file statement by statement takes seconds. The watcher hands such a file here
first, on a thread of its own, and applies other files' change sets meanwhile; once it is read,
the reload takes the parse (:func:`hotswap._engine.history.take_next`) instead of reading the
file again under the lock that every other reload needs. A parse depends only on the text: a
parse made against an older live version is as right as one made at the reload.
"""

from __future__ import annotations

import logging

from hotswap._engine import eligible as _eligible
from hotswap._engine import history as _history
from hotswap._engine.transaction import collector_paused
from hotswap._plan import modules as _modules
from hotswap._plan import statements as _statements
from hotswap.exceptions import HotswapError

__all__ = ("prepare",)

logger = logging.getLogger(__name__)


def prepare(target: str, data: bytes) -> bool:
    """Parse ``data``, the new source of the module ``target`` names, for its next reload.

    Returns:
        Whether a parse is ready; False when the module or its file cannot be read or the
        source does not parse (the reload then reads it, and reports what is wrong).
    """
    try:
        module = _modules.resolve(target)
        name = _modules.canonical(module)
        text = _modules.decode_source(name, _modules.source_file(module), data)
    except (HotswapError, ValueError):
        return False
    # The live version only lends the analyses of the statements that did not change; a read
    # of the records without the lock sees it or an older one, and either is right.
    with collector_paused():  # (its objects would start collections that hold everyone)
        rewrite = _eligible.prepare_ahead(name, text, data)
    if rewrite:
        logger.debug("hotswap: %s: a rewrite, read ahead of its reload (%d bytes)", name, len(data))
        return True  # a whole-module rewrite: it runs as compiled, no statement is read
    record = _history.records.get(name)
    base = record.live if record is not None and record.namespace is vars(module) else None
    try:
        with collector_paused():
            parsed = _statements.parse_module(text, base, keep_nodes=True)
    except SyntaxError:
        return False
    _history.prepare_next(data, parsed)
    logger.debug("hotswap: %s read ahead of its reload (%d bytes)", name, len(data))
    return True
