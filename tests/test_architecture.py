"""The layout keeps the data flow (DESIGN §3): arrows one way between stage packages, no module
circles, the public face alone at the top, integrations through the seam only.

The imports are read with ``ast`` (every import counts: at module level, inside functions and
under ``TYPE_CHECKING``), so a lazy import cannot hide an arrow that runs backwards.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "hotswap"

# Lower numbers sit higher in the flow: cli -> api -> fleet -> {release, watch} -> engine ->
# plan -> config -> ops -> exceptions. A module may import its own stage or a lower one; two
# stages of one rank (release, watch) never import each other.
RANKS = {
    "cli": 0,
    "api": 1,
    "fleet": 2,
    "release": 3,
    "watch": 3,
    "engine": 4,
    "plan": 5,
    "config": 6,
    "ops": 7,
    "exceptions": 8,
}
# What integrations and the pytest plugin may import of hotswap besides their own package.
SEAM = {"hotswap", "hotswap.exceptions", "hotswap._seam"}
# The public face imports these integrations: the package registers its framework adapters by
# name, and IPython calls ``hotswap.load_ipython_extension``. They must not import ``hotswap``
# back (the circle check says so): they use the seam.
ENTRY_POINTS = {"hotswap.integrations", "hotswap.integrations.ipython"}
# The public face: nothing else stands directly in hotswap/.
TOP = {"__init__.py", "__main__.py", "_api.py", "_seam.py", "exceptions.py"}
# Backends behind one module each (STYLE: hupper's backends).
ONLY_IMPORTERS = {"watchdog": "hotswap._watch.", "wrapt": "hotswap._release.proxy"}


def stage(module: str) -> str:
    """The stage a module of hotswap belongs to, or ``outside`` (integrations, plugin)."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("_api", "_seam"):
        return "api"
    head = parts[1]
    if head == "__main__":
        return "cli"
    if head in ("integrations", "pytest_plugin"):
        return "outside"
    if head == "exceptions":
        return "exceptions"
    return head.lstrip("_")


def module_sources(root: pathlib.Path) -> dict[str, str]:
    """Module name -> source for every module of the package at ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path.read_text(encoding="utf-8")
    return found


def imports(module: str, source: str, known: set[str], is_package: bool) -> set[str]:
    """The modules ``module`` imports: of hotswap (resolved to a module where the name is
    one) and the top-level names of other distributions."""
    found: set[str] = set()
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in known else target)
    return found


def violations(sources: dict[str, str], packages: set[str]) -> list[str]:
    """Every arrow against the flow, reach past the seam, stray backend import and circle."""
    known = set(sources)
    graph: dict[str, set[str]] = {}
    problems = []
    for module, source in sources.items():
        targets = imports(module, source, known, module in packages)
        graph[module] = {t for t in targets if t in known}
        mine = stage(module)
        for target in sorted(targets):
            top = target.split(".")[0]
            if top in ONLY_IMPORTERS and not module.startswith(ONLY_IMPORTERS[top]):
                problems.append(f"{module} imports {top} (only {ONLY_IMPORTERS[top]} may)")
            if top != "hotswap":
                continue
            theirs = stage(target)
            if mine == "outside":
                own = ".".join(module.split(".")[:2])
                if target not in SEAM and not target.startswith(own):
                    problems.append(f"{module} reaches {target} (use hotswap._seam)")
            elif theirs == "outside":
                if not (module == "hotswap" and target in ENTRY_POINTS):
                    problems.append(f"{module} ({mine}) imports {target}, an integration")
            elif theirs != mine and RANKS[theirs] <= RANKS[mine]:
                problems.append(f"{module} ({mine}) imports {target} ({theirs}): against the flow")
    problems += [f"circle: {' -> '.join(c)}" for c in circles(graph)]
    return problems


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One path per circle of modules (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def packages_of(root: pathlib.Path) -> set[str]:
    return {".".join(p.parent.relative_to(root.parent).parts) for p in root.rglob("__init__.py")}


def test_architecture_arrows_point_one_way_and_no_module_circle():
    problems = violations(module_sources(PACKAGE), packages_of(PACKAGE))
    assert not problems, "\n".join(problems)


def test_architecture_public_face_alone_at_the_top():
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top <= TOP, f"modules at the top of hotswap/ besides the public face: {top - TOP}"
    stages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name.startswith("_")}
    stages.discard("__pycache__")
    assert {s.lstrip("_") for s in stages} <= set(RANKS), stages


def test_architecture_modules_stay_small():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600
    }
    assert not long, f"modules past 600 lines (split them by concern): {long}"


def test_architecture_stage_packages_say_what_they_take_and_hand_on():
    for init in PACKAGE.glob("_*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init.relative_to(PACKAGE)} has no docstring"


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        # A lower stage importing a higher one, lazily inside a function.
        (
            {
                "hotswap._engine.apply": "def f():\n    from hotswap import _api\n",
                "hotswap._api": "",
            },
            "hotswap._engine.apply (engine) imports hotswap._api (api): against the flow",
        ),
        # Siblings of one rank.
        (
            {
                "hotswap._watch.changeset": "from hotswap._release import canary\n",
                "hotswap._release.canary": "",
            },
            "hotswap._watch.changeset (watch) imports hotswap._release.canary (release): "
            "against the flow",
        ),
        # Under TYPE_CHECKING counts too.
        (
            {
                "hotswap.exceptions": "if TYPE_CHECKING:\n    from hotswap._plan.diff import F\n",
                "hotswap._plan.diff": "",
            },
            "hotswap.exceptions (exceptions) imports hotswap._plan.diff (plan): against the flow",
        ),
        # A circle inside one stage.
        (
            {
                "hotswap._ops.events": "from hotswap._ops import event_types\n",
                "hotswap._ops.event_types": "from hotswap._ops.events import Changes\n",
            },
            "circle: hotswap._ops.event_types -> hotswap._ops.events",
        ),
        # An integration reaching into a stage instead of the seam.
        (
            {
                "hotswap.integrations.flask": "from hotswap._engine.adapters import ModulePlan\n",
                "hotswap._engine.adapters": "",
            },
            "hotswap.integrations.flask reaches hotswap._engine.adapters (use hotswap._seam)",
        ),
        # A backend imported outside the one module that owns it.
        (
            {"hotswap._engine.update": "import wrapt\n"},
            "hotswap._engine.update imports wrapt (only hotswap._release.proxy may)",
        ),
    ],
)
def test_architecture_check_finds(sources, expected):
    assert expected in violations(sources, set())


def test_architecture_check_accepts_the_flow():
    sources = {
        "hotswap._cli.main": "import hotswap\n",
        "hotswap": "from hotswap import _api\n",
        "hotswap._api": "from hotswap._watch import watcher\nfrom hotswap._release import canary\n",
        "hotswap._watch.watcher": "import watchdog\nfrom hotswap._engine import transaction\n",
        "hotswap._release.canary": "from hotswap._engine import transaction\n",
        "hotswap._engine.transaction": "from hotswap._plan import diff\n",
        "hotswap._plan.diff": "from hotswap._config import settings\nimport hotswap.exceptions\n",
        "hotswap._config.settings": "from hotswap._ops import events\n",
        "hotswap._ops.events": "from hotswap.exceptions import HotswapError\n",
        "hotswap.exceptions": "",
        "hotswap.integrations.flask": "from hotswap._seam import ModulePlan\nimport flask\n",
        "hotswap._seam": "from hotswap._engine.transaction import reload_many\n",
    }
    assert violations(sources, {"hotswap"}) == []
