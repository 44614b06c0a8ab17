#!/usr/bin/env bash
# The package as it would be published: `python -m build` makes the wheel and the sdist,
# `twine check --strict` accepts them, each installs in a fresh virtual environment and runs
# `hotswap demo`, the version they carry is hotswap.__version__ (written in one place), and the
# extras the docs name install from the checkout as the docs write it (pip install -e ".[x]").
#
# Usage: bash .ci/package.sh [python]   (default: python3.11 from pyenv, else python3)
# Leaves dist/ (the built files) and nothing else: its virtual environments live in a
# temporary folder removed on exit. Exit status 0 when every step passed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${1:-}
if [[ -z "$python" ]]; then
    root=$(pyenv root 2>/dev/null || true)
    for candidate in "$root"/versions/3.11.*/bin/python3 "$(command -v python3 || true)"; do
        if [[ -n "$candidate" && -x "$candidate" ]] && "$candidate" -c '' 2>/dev/null; then
            python=$candidate
            break
        fi
    done
fi
[[ -n "$python" ]] || { echo "package: no Python found" >&2; exit 2; }

scratch=$(mktemp -d "${TMPDIR:-/tmp}/hotswap-package.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
pip_quiet=(--quiet --disable-pip-version-check)

step() { echo "== package: $*"; }

venv() { # a fresh virtual environment at $scratch/$1
    "$python" -m venv "$scratch/$1"
    "$scratch/$1/bin/python" -m pip install "${pip_quiet[@]}" --upgrade pip >/dev/null
}

step "build the wheel and the sdist (python -m build)"
venv tools
"$scratch/tools/bin/python" -m pip install "${pip_quiet[@]}" build twine
rm -rf dist
"$scratch/tools/bin/python" -m build --outdir dist . >"$scratch/build.log" 2>&1 ||
    { cat "$scratch/build.log"; exit 1; }
wheel=$(ls dist/hotswap-*.whl)
sdist=$(ls dist/hotswap-*.tar.gz)
echo "   $wheel"
echo "   $sdist"

step "twine check --strict"
"$scratch/tools/bin/python" -m twine check --strict "$wheel" "$sdist"

# The version, read from the source without importing it (the one place it is written).
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' hotswap/__init__.py)
[[ -n "$version" ]] || { echo "package: no __version__ in hotswap/__init__.py" >&2; exit 1; }
for built in "$wheel" "$sdist"; do
    [[ $(basename "$built") == hotswap-"$version"[.-]* ]] ||
        { echo "package: $built does not carry version $version" >&2; exit 1; }
done

# Each artifact installed alone, from outside the checkout (so the checkout's hotswap/ folder is
# not what gets imported), runs the demo and reports the version.
for kind in wheel sdist; do
    artifact=$wheel
    [[ $kind == sdist ]] && artifact=$sdist
    step "install the $kind in a fresh venv, run hotswap demo"
    venv "$kind"
    "$scratch/$kind/bin/python" -m pip install "${pip_quiet[@]}" "$PWD/$artifact"
    mkdir -p "$scratch/run-$kind"
    (
        cd "$scratch/run-$kind"
        installed=$("$scratch/$kind/bin/hotswap" --version)
        [[ $installed == "hotswap $version" ]] ||
            { echo "package: hotswap --version says '$installed', not $version" >&2; exit 1; }
        "$scratch/$kind/bin/python" -c '
import pathlib, sys, hotswap
location = pathlib.Path(hotswap.__file__).resolve()
assert "site-packages" in location.parts, location  # the installed copy, not the checkout
' 
        "$scratch/$kind/bin/hotswap" demo >"$scratch/demo-$kind.log" 2>&1 ||
            { cat "$scratch/demo-$kind.log"; exit 1; }
        grep -q "demo finished" "$scratch/demo-$kind.log" ||
            { cat "$scratch/demo-$kind.log"; exit 1; }
    )
    echo "   hotswap $version: demo finished"
done

step "the extras the docs name, installed from the checkout (pip install -e \".[...]\")"
venv extras
"$scratch/extras/bin/python" -m pip install "${pip_quiet[@]}" \
    -e ".[prometheus,otel,signing,yaml]"
"$scratch/extras/bin/python" -c '
import cryptography, prometheus_client, yaml
from opentelemetry.sdk.trace import TracerProvider  # the trace example in docs/operating.md
import hotswap.integrations.otel, hotswap.integrations.prometheus
'
echo "   prometheus, otel (with the SDK), signing, yaml: installed and imported"

step "passed"
