"""hotswap: edit a running Python program's source and it runs the new code, in the same process,
without losing its state; a bad edit is rejected and the last good code keeps running.

Example:
    >>> import hotswap
    >>> hotswap.reload("json").ok
    True
"""

from hotswap import exceptions
from hotswap._api import configure, disable, enable, pinned, reload, rollback, status
from hotswap._config import Settings
from hotswap._events import Changes, Dependent, ModuleStatus, ReloadResult, Skipped, Status
from hotswap._live_config import LiveConfig, live_config
from hotswap._proxy import reloadable
from hotswap.exceptions import (
    ConfigError,
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
    "ConfigError",
    "Dependent",
    "ExecutionError",
    "HotswapError",
    "HotswapWarning",
    "IncompatibleChangeError",
    "LiveConfig",
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
    "live_config",
    "pinned",
    "reload",
    "reloadable",
    "rollback",
    "status",
)
