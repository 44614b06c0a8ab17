"""hotswap: edit a running Python program's source and it runs the new code, in the same process,
without losing its state; a bad edit is rejected and the last good code keeps running.

Example:
    >>> import hotswap
    >>> hotswap.reload("json").ok
    True
"""

from hotswap import _sources, exceptions
from hotswap import integrations as _integrations  # noqa: F401  (registers adapters by name)
from hotswap._api import (
    configure,
    disable,
    enable,
    pinned,
    reload,
    rollback,
    status,
    subscribe,
)
from hotswap._config import AuditPolicy, Settings, SignaturePolicy
from hotswap._events import (
    CanaryCall,
    CanaryDecision,
    ChangeDetected,
    Changes,
    Dependent,
    Event,
    ModuleStatus,
    Planned,
    ReloadResult,
    RolledBack,
    Skipped,
    Status,
    WatcherState,
)
from hotswap._live_config import LiveConfig, live_config
from hotswap._proxy import reloadable
from hotswap.exceptions import (
    AuditError,
    ConfigError,
    ExecutionError,
    HotswapError,
    HotswapWarning,
    IncompatibleChangeError,
    MigrationError,
    ModuleNotReloadableError,
    PinTimeoutError,
    ReentrantReloadError,
    SignatureError,
    SourceSyntaxError,
    VerificationError,
    VersionNotFoundError,
)

__version__ = "0.1.0"

# From now on, the loader keeps the source each module is imported from, so that its first
# reload applies exactly the difference (hotswap/_sources.py).
_sources.install()

__all__ = (
    "AuditError",
    "AuditPolicy",
    "CanaryCall",
    "CanaryDecision",
    "ChangeDetected",
    "Changes",
    "ConfigError",
    "Dependent",
    "Event",
    "ExecutionError",
    "HotswapError",
    "HotswapWarning",
    "IncompatibleChangeError",
    "LiveConfig",
    "MigrationError",
    "ModuleNotReloadableError",
    "ModuleStatus",
    "PinTimeoutError",
    "Planned",
    "ReentrantReloadError",
    "ReloadResult",
    "RolledBack",
    "Settings",
    "SignatureError",
    "SignaturePolicy",
    "Skipped",
    "SourceSyntaxError",
    "Status",
    "VerificationError",
    "VersionNotFoundError",
    "WatcherState",
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
    "subscribe",
)
