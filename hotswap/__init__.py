"""hotswap: edit a running Python program's source and it runs the new code, in the same process,
without losing its state; a bad edit is rejected and the last good code keeps running.

Example:
    >>> import hotswap
    >>> hotswap.reload("json").ok
    True
"""

from typing import Any

from hotswap import exceptions
from hotswap._api import configure, disable, enable, pinned, reload, rollback, status
from hotswap._config import Settings
from hotswap._events import Changes, Dependent, ModuleStatus, ReloadResult, Skipped, Status
from hotswap._proxy import reloadable
from hotswap.exceptions import (
    ExecutionError,
    HotswapError,
    HotswapWarning,
    IncompatibleChangeError,
    MigrationError,
    ModuleNotReloadableError,
    PinTimeoutError,
    ReentrantReloadError,
    SourceSyntaxError,
    VerificationError,
    VersionNotFoundError,
)

__version__ = "0.1.0"


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext hotswap``: apply saved edits before each cell (see docs/notebooks.md).

    IPython calls it; IPython is imported only then, never by ``import hotswap``.

    Args:
        shell: the ``InteractiveShell`` loading the extension.
    """
    from hotswap.integrations import ipython

    ipython.load_ipython_extension(shell)


def unload_ipython_extension(shell: Any) -> None:
    """``%unload_ext hotswap``: stop applying saved edits; the code stays as it is.

    Args:
        shell: the ``InteractiveShell`` unloading the extension.
    """
    from hotswap.integrations import ipython

    ipython.unload_ipython_extension(shell)


__all__ = (
    "Changes",
    "Dependent",
    "ExecutionError",
    "HotswapError",
    "HotswapWarning",
    "IncompatibleChangeError",
    "MigrationError",
    "ModuleNotReloadableError",
    "ModuleStatus",
    "PinTimeoutError",
    "ReentrantReloadError",
    "ReloadResult",
    "Settings",
    "Skipped",
    "SourceSyntaxError",
    "Status",
    "VerificationError",
    "VersionNotFoundError",
    "__version__",
    "configure",
    "disable",
    "enable",
    "exceptions",
    "load_ipython_extension",
    "pinned",
    "reload",
    "reloadable",
    "rollback",
    "status",
    "unload_ipython_extension",
)
