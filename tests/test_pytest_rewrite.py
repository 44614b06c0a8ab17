"""pytest's assertion rewriting and hotswap imported before pytest (issue 25, point 16)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROGRAM = (
    "import sys\nimport hotswap\nimport pytest\n"
    "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider']))\n"
)


def test_pytest_rewrite_no_warning_when_hotswap_was_imported_first(tmp_path: Path) -> None:
    # A wheel install lists hotswap/__init__.py in its RECORD, so pytest marks the package for
    # rewriting as the distribution of a pytest11 plugin (an editable install lists no module
    # and hides the problem): a distribution of that shape stands in for the wheel.
    site = tmp_path / "site"
    info = site / "hotswap_wheel-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hotswap-wheel\nVersion: 0.1.0\n")
    (info / "RECORD").write_text("hotswap/__init__.py,,\nhotswap/pytest_plugin/__init__.py,,\n")
    (info / "entry_points.txt").write_text("[pytest11]\nhotswap = hotswap.pytest_plugin\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\nfilterwarnings =\n    error\n")
    (project / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert "PytestAssertRewriteWarning" not in done.stdout + done.stderr
