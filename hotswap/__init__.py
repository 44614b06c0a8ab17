"""hotswap: edit a running Python program's source and it runs the new code, in the same process,
without losing its state; a bad edit is rejected and the last good code keeps running.

Examples:
    >>> import hotswap
    >>> hotswap.reload("json").ok
    True
"""

from typing import Any

from hotswap import exceptions
from hotswap import integrations as _integrations  # noqa: F401  (registers adapters by name
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
from hotswap._config.settings import (
    AuditPolicy,
    AutoRollback,
    CanaryPolicy,
    Settings,
    SignaturePolicy,
)
from hotswap._ops.events import (
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
from hotswap._plan import sources as _sources
from hotswap._release.canary import Canary, canary, canary_scope
from hotswap._release.proxy import reloadable
from hotswap._watch.liveconfig import LiveConfig, live_config
from hotswap.exceptions import (
    AuditError,
    CanaryError,
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
    "AuditError",
    "AuditPolicy",
    "AutoRollback",
    "Canary",
    "CanaryCall",
    "CanaryDecision",
    "CanaryError",
    "CanaryPolicy",
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
    "canary",
    "canary_scope",
    "configure",
    "disable",
    "enable",
    "exceptions",
    "live_config",
    "load_ipython_extension",
    "pinned",
    "reload",
    "reloadable",
    "rollback",
    "status",
    "subscribe",
    "unload_ipython_extension",
)
