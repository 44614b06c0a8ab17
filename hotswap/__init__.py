"""hotswap: edit a running Python program's source and it runs the new code, in the same process,
without losing its state; a bad edit is rejected and the last good code keeps running.

Example:
    >>> import hotswap
    >>> hotswap.reload("json").ok
    True
"""

from hotswap import exceptions
from hotswap import integrations as _integrations  # noqa: F401  (registers adapters by name)
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
    "pinned",
    "reload",
    "reloadable",
    "rollback",
    "status",
)
