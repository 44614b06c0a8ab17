"""Real releases replayed into a live process, compared with a fresh import (issue 25).

Run: python benchmarks/bench_replay.py [--packages click,toolz] [--steps 6]
     [--peers hotswap,strict,jurigged,autoreload] [--via reload|watcher] [--no-tests]

For each package, consecutive releases (``RELEASES``) are fetched as sdists with ``pip download
--no-deps --no-binary :all:`` into ``~/.cache/hotswap-replay`` (``--cache``), once. A long-lived
process (``_replay_child.py``) imports every module of the first release from a package folder;
each step then writes the next release over that folder as a checkout does (changed files
rewritten, new ones added, removed ones deleted, in one burst) and lets the tool apply it:

- ``--via watcher`` (the default): hotswap is enabled on the folder
  (``hotswap.enable([folder], policy=..., on_reload=...)``) and picks the burst up itself, as
  one or more change sets; the step ends when every changed module that is imported has a
  report and a second passed without another;
- ``--via reload``: ``hotswap.reload(module, policy=...)`` once per changed module that is
  imported, in dependency order (what the new sources import from the package first). Edits
  that need each other (a name moved from one module to another) cannot land this way: the
  first reload re-runs the importer's *old* import statement against the new module, and fails.

jurigged's ``Watcher.refresh(path)`` runs once per changed file in dependency order (its own
observer is not started), IPython's ``ModuleReloader.check()`` (what ``%autoreload 2`` runs
before a cell) once per step, in its own order. Files a release adds are not applied by
themselves: they are imported when a changed importer needs them.

The time of a step is the tool's, in the live process: through the watcher, from the end of
the writes to the end of the quiet second (so at least 1,000 ms; the reloads themselves are the
rest); otherwise the reload calls or ``check()``.

After each step a fresh interpreter imports the same release and the same modules, and both
describe every module-level name (``_replay_child.describe``: code objects recursively without
line numbers, signatures, generator-ness, classes with their MRO and members, whether a class
or function is still the one its module binds, simple values, container contents). A name whose
descriptions differ is *divergent*, except the names a deleted file leaves (its module's names
and the package attribute bound to it, live only): those are counted apart, as "of deleted
files", a documented limit (docs/limits.md). Then the release's own tests (from the sdist)
run in the live process and in the fresh one: *test parity* counts the tests whose outcome
differs.

Last come the refusals (``_replay_refusals.py``): per peer, the steps it refused and each
change a refusal names, with the release that brought it (``strict``: why it could break a
caller).

Peers: ``hotswap`` (policy "off"), ``strict`` (hotswap with policy "strict"), ``jurigged`` and
``autoreload`` (IPython), each peer in a scratch venv made under the cache folder (pip install
from the package index, with pytest; a peer that does not install is skipped with its reason).
Every process runs with ``-B`` (no bytecode files: a checkout within one second could otherwise
import a stale ``.pyc``), ``PYTHONHASHSEED=0`` and ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from _replay_refusals import refusals
from _replay_tests import marker_expression

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CHILD = HERE / "_replay_child.py"
# package on the index -> (import packages, consecutive releases, tests run?)
RELEASES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "more-itertools": (
        ("more_itertools",),
        ("10.8.0", "11.0.0", "11.0.1", "11.0.2", "11.1.0", "11.2.0", "11.2.1"),
    ),
    "toolz": (
        ("toolz", "tlz"),
        ("0.11.1", "0.11.2", "0.12.0", "0.12.1", "1.0.0", "1.1.0", "1.2.0"),
    ),
    "boltons": (
        ("boltons",),
        ("23.1.1", "24.0.0", "24.1.0", "25.0.0", "26.0.0", "26.1.0", "26.2.0"),
    ),
    "idna": (("idna",), ("3.15", "3.16", "3.17", "3.18", "3.19", "3.20", "3.21")),
    "click": (("click",), ("8.3.2", "8.3.3", "8.4.0", "8.4.1", "8.4.2", "8.5.0", "8.5.1")),
    "cachetools": (
        ("cachetools",),
        ("7.3.1", "7.3.2", "7.3.3", "8.0.0", "8.0.1", "8.0.2", "8.0.3"),
    ),
}
UNSTABLE = "<differs between two fresh imports>"
PEERS = ("hotswap", "strict", "jurigged", "autoreload")
INSTALL = {"jurigged": ["jurigged", "pytest"], "autoreload": ["ipython", "pytest"]}
ENV = {"PYTHONHASHSEED": "0", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONDONTWRITEBYTECODE": "1"}


# --- releases -----------------------------------------------------------------------------------


def fetch(cache: Path, name: str, version: str) -> Path:
    """The release's sdist unpacked under the cache (downloaded once): its root folder."""
    unpacked = cache / "src" / f"{name}-{version}"
    if unpacked.exists():
        return next(p for p in unpacked.iterdir() if p.is_dir())
    downloads = cache / "dl"
    downloads.mkdir(parents=True, exist_ok=True)
    found = _archive(downloads, name, version)
    if found is None:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"{name}=={version}",
            "-d",
            str(downloads),
        ]
        subprocess.run(command, check=True, capture_output=True, timeout=600)
        found = _archive(downloads, name, version)
        if found is None:
            raise FileNotFoundError(f"pip download gave no sdist of {name} {version}")
    partial = unpacked.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    if found.suffix == ".zip":
        with zipfile.ZipFile(found) as archive:
            archive.extractall(partial)
    else:
        with tarfile.open(found) as archive:
            archive.extractall(partial, filter="data")
    partial.rename(unpacked)
    return next(p for p in unpacked.iterdir() if p.is_dir())


def _archive(folder: Path, name: str, version: str) -> Path | None:
    stems = {f"{name}-{version}", f"{name.replace('-', '_')}-{version}"}
    for path in folder.iterdir():
        stem = path.name.removesuffix(".tar.gz").removesuffix(".zip")
        if stem.lower() in stems:
            return path
    return None


def layout(root: Path, packages: tuple[str, ...]) -> tuple[Path, Path | None]:
    """(the folder holding the import packages, the tests folder or None)."""
    base = root / "src" if (root / "src" / packages[0]).is_dir() else root
    tests = root / "tests"
    if not tests.is_dir():
        inside = base / packages[0] / "tests"
        tests = inside if inside.is_dir() else None  # type: ignore[assignment]
    return base, tests


def files_of(base: Path, packages: tuple[str, ...]) -> dict[str, bytes]:
    found = {}
    for package in packages:
        for path in sorted((base / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                found[str(path.relative_to(base))] = path.read_bytes()
    return found


def land(
    folder: Path, old: dict[str, bytes], new: dict[str, bytes], *, git: bool = False
) -> list[str]:
    """Write ``new`` over ``folder`` as a checkout does; the changed or added paths. With
    ``git``, as git does it: under ``.git/index.lock``, renamed over the index at the end."""
    lock = folder / ".git" / "index.lock"
    if git:
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_bytes(b"")
    try:
        return _write(folder, old, new)
    finally:
        if git:
            lock.replace(lock.with_name("index"))


def _write(folder: Path, old: dict[str, bytes], new: dict[str, bytes]) -> list[str]:
    changed = []
    for relative, data in new.items():
        if old.get(relative) != data:
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            changed.append(relative)
    for relative in old:
        if relative not in new:
            (folder / relative).unlink()
    return changed


def module_name(relative: str) -> str | None:
    if not relative.endswith(".py"):
        return None
    name = relative[:-3].replace(os.sep, ".").replace("/", ".")
    return name.removesuffix(".__init__")


def dependency_order(folder: Path, names: list[str], packages: tuple[str, ...]) -> list[str]:
    """``names`` ordered so that what a module's new source imports from the package comes
    before it (package ``__init__`` modules last among their own imports)."""
    imports: dict[str, set[str]] = {}
    for name in names:
        path = folder / (name.replace(".", "/") + ".py")
        if not path.exists():
            path = folder / name.replace(".", "/") / "__init__.py"
        is_package = path.name == "__init__.py"
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_bytes())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                parent = name if is_package else name.rpartition(".")[0]
                for _ in range(max(node.level - 1, 0)):
                    parent = parent.rpartition(".")[0]
                base = (
                    f"{parent}.{node.module}"
                    if node.level and node.module
                    else (parent if node.level else node.module or "")
                )
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
        imports[name] = {n for n in found if n in names and n != name}
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered or name in visiting:
            return
        visiting.add(name)
        for dependency in sorted(imports[name]):
            visit(dependency)
        ordered.append(name)

    for name in sorted(names):
        visit(name)
    return ordered


# --- processes ----------------------------------------------------------------------------------


class Child:
    """One ``_replay_child.py`` process: commands in, JSON answers back on a pipe of its own."""

    def __init__(
        self,
        python: str,
        tool: str,
        policy: str,
        folder: Path,
        packages: tuple[str, ...],
        log: Path,
    ) -> None:
        read, write = os.pipe()
        env = {**os.environ, **ENV}
        command = [
            python,
            "-B",
            str(CHILD),
            tool,
            policy,
            str(folder),
            ",".join(packages),
            str(write),
        ]
        with open(log, "ab") as output:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=output,
                pass_fds=(write,),
                env=env,
                cwd=folder,
            )
        os.close(write)
        self.answers = os.fdopen(read)

    def ask(self, op: str, **arguments: Any) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"op": op, **arguments}) + "\n").encode())
        self.process.stdin.flush()
        line = self.answers.readline()
        if not line:
            raise RuntimeError(f"the {op!r} command ended the child (see its log)")
        return json.loads(line)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, BrokenPipeError):
            self.ask("quit")
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.answers.close()
        if self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()


def make_env(cache: Path, peer: str) -> tuple[str | None, str]:
    """The peer's scratch venv under the cache (made once): (its python or None, a note)."""
    if peer in ("hotswap", "strict"):
        return sys.executable, ""
    env = cache / "envs" / peer
    python = env / "bin" / "python"
    marker = env / "installed"
    if not marker.exists():
        base = getattr(sys, "_base_executable", sys.executable)
        try:
            subprocess.run(
                [base, "-m", "venv", "--clear", str(env)],
                check=True,
                capture_output=True,
                timeout=300,
            )
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", *INSTALL[peer]],
                check=True,
                capture_output=True,
                text=True,
                timeout=900,
            )
        except subprocess.CalledProcessError as error:
            tail = (error.stderr or "").strip().splitlines()[-1:] or ["failed"]
            return None, f"{peer} did not install: {tail[0][:160]}"
        except (OSError, subprocess.TimeoutExpired) as error:
            return None, f"{peer} did not install: {error}"
        marker.write_text("ok\n")
    return str(python), ""


# --- one package --------------------------------------------------------------------------------


def why(live: str | None, fresh: str | None) -> str:
    """Where two descriptions part: a little of each around the first difference."""
    if live is None or fresh is None:
        return "only in the fresh import" if live is None else "only in the live process"
    at = next(
        (i for i, (a, b) in enumerate(zip(live, fresh, strict=False)) if a != b),
        min(len(live), len(fresh)),
    )
    start = max(at - 60, 0)
    return f"live ...{live[start : at + 60]}... fresh ...{fresh[start : at + 60]}..."


def divergent(live: dict[str, str], fresh: dict[str, str]) -> list[str]:
    keys = live.keys() | fresh.keys()
    return sorted(k for k in keys if live.get(k) != fresh.get(k) and fresh.get(k) != UNSTABLE)


def of_deleted_files(names: list[str], live: dict[str, str], gone: list[str]) -> list[str]:
    """The divergent names that a deleted file leaves, a documented limit (docs/limits.md:
    "a deleted file leaves its module running as it was"): the names of a module whose file
    is gone, and a package's attribute bound to such a module, both only in the live process."""
    modules = set(gone)
    found = []
    for key in names:
        module, _, attribute = key.partition(":")
        value = live.get(key, "")
        bound = any(value == json.dumps(["module", m]) for m in modules)
        if module in modules or (bound and f"{module}.{attribute}" in modules):
            found.append(key)
    return found


def replay(
    cache: Path,
    work: Path,
    name: str,
    peers: list[str],
    steps: int,
    via: str,
    tests: bool | frozenset[str],
    explain: int = 0,
) -> dict[str, Any]:
    """Replay ``steps`` upgrades of one package for every peer: per peer a row of figures."""
    packages, versions = RELEASES[name]
    versions = versions[: steps + 1]
    roots = [fetch(cache, name, version) for version in versions]
    trees = [layout(root, packages) for root in roots]
    releases = [files_of(base, packages) for base, _ in trees]
    log = work / f"{name}.log"
    fresh_rows = []  # per step: (snapshot, test outcomes) of a fresh interpreter
    for index in range(1, len(versions)):
        # Named like the live folders (``{name}-{peer}``): a test that strips the package's
        # path by its characters (boltons' ``p.lstrip(BOLTONS_PATH)``) reads both alike.
        folder = work / f"{name}-{index}"
        land(folder, {}, releases[index])
        fresh_rows.append(folder)
    rows: dict[str, Any] = {}
    environments = {peer: make_env(cache, peer) for peer in peers}
    fresh_cache: dict[tuple[int, tuple[str, ...], bool], tuple[dict[str, str], dict[str, str]]] = {}
    for peer in peers:
        python, note = environments[peer]
        if python is None:
            rows[peer] = {"note": note}
            print(f"  {name}: {peer} skipped: {note}", flush=True)
            continue
        tool = {"hotswap": "hotswap", "strict": "hotswap"}.get(peer, peer)
        if tool == "hotswap" and via == "watcher":
            tool = "hotswap-watcher"
        policy = "strict" if peer == "strict" else "off"
        folder = work / f"{name}-{peer}"
        land(folder, {}, releases[0], git=True)  # (a repository before the watcher starts)
        child = Child(python, tool, policy, folder, packages, log)
        row: dict[str, Any] = {
            "steps": 0,
            "applied": 0,
            "unchanged": 0,
            "refused": 0,
            "failed": 0,
            "reasons": [],
            "divergent": [],
            "tests": [],
            "seconds": [],
            "note": note,
        }
        try:
            child.ask("import")
            for index in range(1, len(versions)):
                changed = land(folder, releases[index - 1], releases[index], git=True)
                modules = [m for m in map(module_name, changed) if m]
                order = dependency_order(folder, modules, packages)
                paths = {
                    m: str(folder / p)
                    for m, p in zip(map(module_name, changed), changed, strict=True)
                    if m
                }
                added = [module_name(p) for p in changed if p not in releases[index - 1]]
                step = child.ask("step", order=order, paths=paths, added=added)
                row["steps"] += 1
                row["seconds"].append(step["seconds"])
                for result in step["results"]:
                    row[result["outcome"]] += 1
                    if result["outcome"] in ("refused", "failed"):
                        row["reasons"].append(
                            f"{versions[index]} {result['module']}: {result['reason']}"
                        )
                live = child.ask("snapshot")
                imported = sorted({key.partition(":")[0] for key in live})
                wanted = tests if isinstance(tests, bool) else peer in tests
                key = (index, tuple(imported), wanted)
                if key not in fresh_cache:
                    fresh_cache[key] = fresh_state(
                        fresh_rows[index - 1],
                        packages,
                        imported,
                        trees[index][1],
                        log,
                        wanted,
                        marker_expression(roots[index]),
                    )
                fresh, fresh_tests = fresh_cache[key]
                names = divergent(live, fresh)
                limit = of_deleted_files(names, live, child.ask("deleted"))
                names = [n for n in names if n not in limit]
                row["divergent"].append((versions[index], names))
                row.setdefault("deleted", []).append((versions[index], limit))
                for shown in names[:explain]:
                    print(f"    {shown}: {why(live.get(shown), fresh.get(shown))}", flush=True)
                if wanted and trees[index][1] is not None:
                    copy = tests_copy(work, name, index, trees[index][1])
                    outcomes = child.ask(
                        "test",
                        tests=str(copy),
                        rootdir=str(copy.parent),
                        marks=marker_expression(roots[index]),
                    )
                    differ = sorted(
                        k
                        for k in outcomes.keys() | fresh_tests.keys()
                        if outcomes.get(k, "passed") != fresh_tests.get(k, "passed")
                    )
                    row["tests"].append((versions[index], len(fresh_tests), differ))
                print(
                    f"  {name} {versions[index]} {peer}: {len(names)} divergent, "
                    f"{step['seconds'] * 1000:.0f} ms",
                    flush=True,
                )
        except RuntimeError as error:
            row["note"] = str(error)
        finally:
            child.close()
        rows[peer] = row
    return rows


def tests_copy(work: Path, name: str, index: int, tests: Path) -> Path:
    """The release's tests in a folder of their own (the live package folder holds no tests
    of another release)."""
    target = work / f"tests-{name}-{index}" / tests.name
    if not target.exists():
        shutil.copytree(tests, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def fresh_state(
    folder: Path,
    packages: tuple[str, ...],
    imported: list[str],
    tests: Path | None,
    log: Path,
    run: bool,
    marks: str | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """A fresh interpreter's description of the same modules, and its test outcomes."""
    child = Child(sys.executable, "fresh", "off", folder, packages, log)
    try:
        # The modules the live process holds (that still exist), as the program imported them.
        child.ask("import", modules=imported)
        state = child.ask("snapshot")
        # A second fresh interpreter: names whose description differs between two fresh
        # imports (``hash(None)`` is an address before 3.12) are left out of the comparison.
        again = Child(sys.executable, "fresh", "off", folder, packages, log)
        try:
            again.ask("import", modules=imported)
            for key in divergent(state, again.ask("snapshot")):
                state[key] = UNSTABLE
        finally:
            again.close()
        outcomes: dict[str, str] = {}
        if run and tests is not None:
            copy = folder.parent / f"tests-{folder.name}-fresh" / tests.name
            if not copy.exists():
                shutil.copytree(tests, copy, ignore=shutil.ignore_patterns("__pycache__"))
            outcomes = child.ask("test", tests=str(copy), rootdir=str(copy.parent), marks=marks)
        return state, outcomes
    finally:
        child.close()


# --- the table ----------------------------------------------------------------------------------


def table(results: dict[str, dict[str, Any]]) -> str:
    """One Markdown row per package and peer."""
    lines = [
        "| package | peer | steps | applied / unchanged / refused / failed | divergent names "
        "(per step) | tests differing from fresh (per step, of N) | ms per step (median / max) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, rows in results.items():
        for peer, row in rows.items():
            if "steps" not in row:
                lines.append(f"| {name} | {peer} | - | - | - | - | {row['note']} |")
                continue
            counts = f"{row['applied']} / {row['unchanged']} / {row['refused']} / {row['failed']}"
            per_step = [len(names) for _, names in row["divergent"]]
            divergent = f"{sum(per_step)} ({' '.join(map(str, per_step))})"
            left = sum(len(names) for _, names in row.get("deleted", []))
            if left:
                divergent += f"; {left} of deleted files"
            if row["tests"]:
                total = max(n for _, n, _ in row["tests"])
                per = " ".join(str(len(d)) for _, _, d in row["tests"])
                tests = f"{sum(len(d) for _, _, d in row['tests'])} ({per}; N≈{total})"
            else:
                tests = "not run"
            times = sorted(row["seconds"]) or [0.0]
            median = times[len(times) // 2] * 1000
            timing = f"{median:.0f} / {times[-1] * 1000:.0f}"
            note = f" {row['note']}" if row["note"] else ""
            lines.append(
                f"| {name} | {peer} | {row['steps']}{note} | {counts} | {divergent} | "
                f"{tests} | {timing} |"
            )
    return "\n".join(lines)


def details(results: dict[str, dict[str, Any]], limit: int) -> str:
    """Refusals and failures with their reasons, and the first divergent names of each step."""
    out = []
    for name, rows in results.items():
        for peer, row in rows.items():
            for reason in row.get("reasons", [])[:limit]:
                out.append(f"- {name} {peer}: {reason}")
            for version, names in row.get("divergent", []):
                if names:
                    shown = ", ".join(names[:limit])
                    more = f" (+{len(names) - limit})" if len(names) > limit else ""
                    out.append(f"- {name} {peer} {version}: divergent {shown}{more}")
            for version, names in row.get("deleted", []):
                if names:
                    shown = ", ".join(names[:limit])
                    more = f" (+{len(names) - limit})" if len(names) > limit else ""
                    out.append(f"- {name} {peer} {version}: left by deleted files {shown}{more}")
            for version, _, differ in row.get("tests", []):
                if differ:
                    shown = ", ".join(differ[:3])
                    out.append(f"- {name} {peer} {version}: {len(differ)} tests differ: {shown}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> dict[str, dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", default=",".join(RELEASES))
    parser.add_argument("--steps", type=int, default=6, help="upgrades per package (max 6)")
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--via", choices=("reload", "watcher"), default="watcher")
    parser.add_argument("--no-tests", action="store_true")
    parser.add_argument("--tests-for", help="run the tests for these peers only (a,b)")
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/hotswap-replay"))
    parser.add_argument("--details", type=int, default=5, help="names shown per step")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--explain", type=int, default=0, help="divergences shown in full")
    parser.add_argument("--report", help="print the table of earlier --json files (a,b) only")
    args = parser.parse_args(argv)
    if args.report:
        merged: dict[str, dict[str, Any]] = {}
        for file in args.report.split(","):
            merged.update(json.loads(Path(file).read_text()))
        print(table(merged))
        print()
        print(details(merged, args.details))
        print()
        print(refusals(merged))
        return merged
    cache = Path(args.cache)
    tests: bool | frozenset[str] = not args.no_tests
    if args.tests_for and tests:
        tests = frozenset(args.tests_for.split(","))
    peers = [p for p in args.peers.split(",") if p]
    started = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="hotswap-replay-") as work:
        for name in [p for p in args.packages.split(",") if p]:
            print(f"{name}:", flush=True)
            results[name] = replay(
                cache,
                Path(work),
                name,
                peers,
                args.steps,
                args.via,
                tests,
                args.explain,
            )
            if args.json:  # after each package: a long run stopped half-way keeps its figures
                Path(args.json).write_text(json.dumps(results, indent=1))
    elapsed = time.perf_counter() - started
    print()
    print(table(results))
    print()
    print(details(results, args.details))
    print()
    print(refusals(results))
    load = os.getloadavg()
    print(
        f"\n{elapsed:.0f} s in all; via {args.via}; load average {load[0]:.2f} {load[1]:.2f}"
        f" {load[2]:.2f} on {os.cpu_count()} cores"
    )
    return results


if __name__ == "__main__":
    main()
