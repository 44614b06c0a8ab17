"""hotswap: edit a running Python program's source and it runs the new code, in the same process,
without losing its state; a bad edit is rejected and the last good code keeps running.

Example:
    >>> import hotswap
    >>> hotswap.reload("json").ok
    True
"""

from hotswap import _sources, exceptions
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

# From now on, the loader keeps the source each module is imported from, so that its first
# reload applies exactly the difference (hotswap/_sources.py).
_sources.install()

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
