"""The IPython/Jupyter extension: ``%load_ext hotswap``.

Loading it starts the watcher on the current folder (or ``[tool.hotswap] paths``), and before
each cell runs it applies every pending change synchronously, so a cell never races a save:
it looks for loaded modules under the watched paths whose file changed and reloads them, the
imported modules before their importers. Names the shell imported (``from m import x``,
``import m as y``, ``from m import *``) then follow their module. A failed reload prints one
line (file, line and why) once per file content; the cell still runs, on the previous code.

The ``%hotswap`` magic shows a status table and offers ``rollback``, ``policy``, ``off``,
``on`` and ``reset``. ``%unload_ext hotswap`` stops everything.

This is the only module of hotswap that imports IPython; it prints, as an extension's output.
"""

from __future__ import annotations

import ast
import logging
import os
import sys
from typing import Any

from hotswap._seam import POLICIES, Pending, ReloadResult, api, describe, reload_many
from hotswap.integrations._shell_names import ImportedNames

__all__ = ("HotswapExtension", "load_ipython_extension", "unload_ipython_extension")

USAGE = """\
%hotswap                          status: module, version, last change, last error
%hotswap rollback MODULE [VERSION] back to the previous (or that) version, until the next save
%hotswap policy strict|warn|off   what to do with changes that could break callers
%hotswap off | on                 stop or resume applying saves
%hotswap reset MODULE             run the whole module again (its state starts afresh)"""


class HotswapExtension:
    """The extension's state in one shell: what it follows and what it printed.

    Args:
        shell: the ``InteractiveShell``.
    """

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.active = True
        self.names = ImportedNames()
        settings = api.configure()
        self.paths = list(settings.paths) or [os.getcwd()]
        self.pending = Pending(self.paths, settings.exclude)
        self.pending.learn()
        self.last_change: dict[str, ReloadResult] = {}
        self.last_error: dict[str, ReloadResult] = {}
        self._reported: dict[str, str] = {}  # module -> the failed content last reported
        self._started_watcher = False
        self._quiet_handler: logging.Handler | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Watch, hook the cells and register ``%hotswap``."""
        self._start_watcher()
        logger = logging.getLogger("hotswap")
        if not logger.handlers and not logging.getLogger().handlers:
            # Without any handler, Python's last-resort handler would print each failure
            # the watcher logs, and this extension prints it too: one line is enough.
            self._quiet_handler = logging.NullHandler()
            logger.addHandler(self._quiet_handler)
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)
        self.shell.register_magic_function(self.magic, "line", "hotswap")

    def stop(self) -> None:
        """Undo :meth:`start`: the code stays as it is."""
        self.shell.events.unregister("pre_run_cell", self.pre_run_cell)
        self.shell.events.unregister("post_run_cell", self.post_run_cell)
        self.shell.magics_manager.magics["line"].pop("hotswap", None)
        if self._quiet_handler is not None:
            logging.getLogger("hotswap").removeHandler(self._quiet_handler)
            self._quiet_handler = None
        self._stop_watcher()
        self.names.clear()

    def _start_watcher(self) -> None:
        running = api.status().watching
        if not running:  # a running watcher is kept as it is (enable() would warn so)
            paths: list[str | os.PathLike[str]] = list(self.paths)
            api.enable(paths, on_reload=self._record)
        self._started_watcher = not running

    def _stop_watcher(self) -> None:
        if self._started_watcher:
            api.disable()
            self._started_watcher = False

    # --- before and after each cell ---------------------------------------------------------

    def pre_run_cell(self, *_info: object) -> None:
        """Apply what changed on disk, then bring the shell's imported names up to date."""
        if not self.active:
            return
        self.apply_pending()
        self.names.sync(self.shell.user_ns)

    def post_run_cell(self, result: Any = None) -> None:
        """Follow the names the cell imported; learn the modules it imported."""
        raw = getattr(getattr(result, "info", None), "raw_cell", None)
        if isinstance(raw, str) and "import" in raw:
            try:
                tree = ast.parse(self.shell.transform_cell(raw))
            except (SyntaxError, ValueError):
                tree = None
            if tree is not None:
                self.names.record(tree, self.shell.user_ns)
        self.pending.learn()

    def apply_pending(self) -> list[ReloadResult]:
        """Reload every followed module whose file changed, imported modules first, as one
        change set (DESIGN §5.3: files saved together are applied together)."""
        changes = self.pending.changes()
        if not changes:
            return []
        # Exactly the bytes that were hashed are applied, not what the file holds a moment
        # later.
        results = reload_many([(c.module, c.data) for c in changes])
        for change, result in zip(changes, results, strict=True):
            self._record(result)
            if result.ok:
                self._reported.pop(change.module, None)
            elif self._reported.get(change.module) != change.digest:
                self._reported[change.module] = change.digest
                print(f"hotswap: {describe(result)}", file=sys.stderr)
        return results

    def _record(self, result: ReloadResult) -> None:
        if not result.ok:
            self.last_error[result.module] = result
            return
        # Any success, a save back to the code that runs ("unchanged") included: the file
        # holds working code again, so the error is history.
        self.last_error.pop(result.module, None)
        if result.kind != "unchanged":
            self.last_change[result.module] = result

    # --- %hotswap ---------------------------------------------------------------------------

    def magic(self, line: str = "") -> None:
        """``%hotswap [rollback MODULE [VERSION] | policy P | off | on | reset MODULE]``."""
        words = line.split()
        command, arguments = (words[0], words[1:]) if words else ("", [])
        if command == "":
            print(self.table())
        elif command == "rollback" and len(arguments) in (1, 2):
            self._rollback(*arguments)
        elif command == "policy" and len(arguments) == 1 and arguments[0] in POLICIES:
            api.configure(policy=arguments[0])
            print(f"hotswap: policy {arguments[0]}")
        elif command == "off" and not arguments:
            self.active = False
            self._stop_watcher()
            print("hotswap: off (saves are not applied until %hotswap on)")
        elif command == "on" and not arguments:
            self.active = True
            self._start_watcher()
            print("hotswap: on")
        elif command == "reset" and len(arguments) == 1:
            self._show(api.reload(arguments[0], force=True))
        else:
            print(f"usage:\n{USAGE}", file=sys.stderr)

    def _rollback(self, module: str, version: str | None = None) -> None:
        if version is not None and not version.isdigit():
            print(f"hotswap: rollback: VERSION must be a number, not {version!r}", file=sys.stderr)
            return
        # The file stays as it is, so nothing looks pending: the rollback sticks until the
        # file is saved again (the watcher, too, takes the content a rollback left for no save).
        result = api.rollback(module, to=None if version is None else int(version))
        self._show(result)

    def _show(self, result: ReloadResult) -> None:
        self._record(result)
        self.names.sync(self.shell.user_ns)
        print(f"hotswap: {describe(result)}", file=sys.stdout if result.ok else sys.stderr)

    def table(self) -> str:
        """The status table, as text: module, version, last change, last error."""
        status = api.status()
        state = "on" if self.active else "off"
        watching = "watching " + ", ".join(self.paths) if status.watching else "not watching"
        head = f"hotswap {state}, {watching}; policy {api.configure().policy}"
        rows = [("module", "version", "last change", "last error")]
        for name in sorted(status.modules):
            module = status.modules[name]
            change = self.last_change.get(name)
            error = self.last_error.get(name)
            rows.append(
                (
                    name,
                    f"v{module.version}",
                    "-" if change is None else _change_text(change),
                    "-" if error is None else _one_line(str(error.error)),
                )
            )
        if len(rows) == 1:
            return f"{head}\nno module reloaded yet"
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [
            "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
            + "  "
            + row[3]
            for row in rows
        ]
        return "\n".join([head, *(line.rstrip() for line in lines)])


def _change_text(result: ReloadResult) -> str:
    if result.kind == "rollback":
        return f"rolled back to v{result.version}"
    if result.kind == "reset":
        return "reset"
    return result.changes.summary()


def _one_line(text: str) -> str:
    first = text.splitlines()[0] if text else ""
    return first if len(first) <= 100 else first[:97] + "..."


_extensions: dict[int, HotswapExtension] = {}


def load_ipython_extension(shell: Any) -> None:
    """Called by ``%load_ext hotswap``: start applying saves before each cell.

    Loading it twice in one shell does nothing the second time.
    """
    if id(shell) in _extensions:
        return
    extension = HotswapExtension(shell)
    extension.start()
    _extensions[id(shell)] = extension


def unload_ipython_extension(shell: Any) -> None:
    """Called by ``%unload_ext hotswap``: stop watching, hooks and magic removed."""
    extension = _extensions.pop(id(shell), None)
    if extension is not None:
        extension.stop()
