"""Every ```python block in README.md and docs/*.md runs, as written, in a fresh folder.

The convention (docs/development.md, "Code in the docs"):

- Each block runs in a new Python process whose current folder is a new temporary folder
  (first on ``sys.path``), with ``TMPDIR`` pointing into it. After the block, that temporary
  folder must hold nothing: a block may not leave folders behind in the temp directory.
- A block whose info string names a file, ```python title="pricing.py"```, is that file's
  content: it is written to the block's folder, and to the folder of every later block of the
  same page, so a later block can import it. The file block itself runs as ``python pricing.py``,
  except a ``test_*.py`` file, which runs as ``python -m pytest test_x.py`` and must pass
  (pytest's ``tmp_path`` folders go under the block's folder).
- A block without a title runs as the ``__main__`` of ``python -c``; a traceback names the
  Markdown file and its line.
- An HTML comment right before a block, ``<!-- docs-test: {"edit": [FILE, OLD, NEW], "expect":
  TEXT} -->``, is for a program that runs until stopped: once it printed its first line, OLD
  is replaced with NEW in FILE (one of the page's files), and the block passes when a line of
  its output contains TEXT; then it is stopped. It fails if TEXT does not come.

Nothing is skipped: a block that cannot run as written is rewritten so that it can.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(
    r"(?:^<!-- docs-test: (?P<directive>.*?) -->\n)?"
    r"^(?P<indent>[ ]*)```python(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=indent)```[ ]*$",
    re.MULTILINE | re.DOTALL,
)
TITLE = re.compile(r'^\s*title="(?P<name>[^"]+)"\s*$')
BLOCK_TIMEOUT = 120.0  # generous: the machine may be loaded; never a bound on what is asserted

# Runs a block as __main__ of ``python -c``; the leading newlines make its line numbers the
# Markdown file's, so a traceback points at the document.
RUNNER = """\
import sys
document, first, code = sys.argv[1], int(sys.argv[2]), sys.argv[3]
del sys.argv[1:]
main = sys.modules["__main__"]
exec(compile("\\n" * (first - 1) + code, document, "exec", dont_inherit=True), vars(main))
"""


@dataclass(frozen=True)
class Block:
    """One ```python block: where it stands, its code, the file it is (if any), its directive."""

    document: str
    line: int
    code: str
    file: str | None = None
    directive: dict[str, object] = field(default_factory=dict)
    files: tuple[tuple[str, str], ...] = ()  # the page's file blocks up to this one

    @property
    def name(self) -> str:
        return f"{self.document}:{self.line}"


def parse(document: str, text: str) -> list[Block]:
    """The python blocks of one Markdown text, in order, each with the page's files so far."""
    blocks: list[Block] = []
    files: dict[str, str] = {}
    for match in FENCE.finditer(text):
        indent = match["indent"]
        code = "".join(
            line.removeprefix(indent) for line in match["body"].splitlines(keepends=True)
        )
        line = text.count("\n", 0, match.start("body")) + 1
        info = match["info"].strip()
        file = None
        if info:
            titled = TITLE.match(info)
            if titled is None:
                message = f"{document}:{line}: unknown info string {info!r} (only title=...)"
                raise ValueError(message)
            file = titled["name"]
            files[file] = code
        directive = json.loads(match["directive"]) if match["directive"] else {}
        blocks.append(Block(document, line, code, file, directive, tuple(files.items())))
    return blocks


def all_blocks() -> list[Block]:
    found: list[Block] = []
    for path in DOCUMENTS:
        document = path.relative_to(ROOT).as_posix()
        found.extend(parse(document, path.read_text(encoding="utf-8")))
    return found


def command(block: Block) -> list[str]:
    if block.file is None:
        return [sys.executable, "-c", RUNNER, block.document, str(block.line), block.code]
    if Path(block.file).name.startswith("test_"):
        # pytest's own tmp_path folders go in the block's folder, not the temp directory.
        pytest_args = ["-q", "-p", "no:cacheprovider", "--basetemp", "pytest-tmp", block.file]
        return [sys.executable, "-m", "pytest", *pytest_args]
    return [sys.executable, block.file]


def run_block(block: Block) -> str:
    """Run one block in a fresh folder; its output. Fails (pytest.fail) on anything wrong."""
    with tempfile.TemporaryDirectory(prefix="hotswap-docs-") as folder:
        root = Path(folder, "work")
        temp = Path(folder, "tmp")
        root.mkdir()
        temp.mkdir()
        for name, content in block.files:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        env = {**os.environ, "TMPDIR": str(temp), "PYTHONPATH": str(root), "NO_COLOR": "1"}
        env.pop("PYTEST_ADDOPTS", None)
        if block.directive:
            output = _run_until(block, root, env)
        else:
            done = subprocess.run(
                command(block),
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=BLOCK_TIMEOUT,
                check=False,
            )
            output = done.stdout + done.stderr
            if done.returncode != 0:
                pytest.fail(f"{block.name} exited with {done.returncode}:\n{output}")
        left = sorted(path.name for path in temp.iterdir())
        if left:
            pytest.fail(f"{block.name} left {left} in the temp directory")
        return output


def _run_until(block: Block, root: Path, env: dict[str, str]) -> str:
    """A program that runs until stopped: edit a file once it runs, wait for the text."""
    edit = block.directive["edit"]
    expect = block.directive["expect"]
    assert isinstance(edit, list), block.directive
    assert isinstance(expect, str), block.directive
    name, old, new = edit
    lines: list[str] = []
    first = threading.Event()  # the program printed its first line (or ended)
    over = threading.Event()  # the text came, or the program ended
    process = subprocess.Popen(
        command(block),
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            first.set()
            if expect in line:
                break
        first.set()
        over.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        first.wait(BLOCK_TIMEOUT)
        path = root / name
        source = path.read_text(encoding="utf-8")
        assert old in source, f"{block.name}: {old!r} not in {name}"
        path.write_text(source.replace(old, new), encoding="utf-8")
        over.wait(BLOCK_TIMEOUT)
    finally:
        process.kill()
        process.wait()
        reader.join(BLOCK_TIMEOUT)
        assert process.stdout is not None
        process.stdout.close()
    output = "".join(lines)
    if expect not in output:
        pytest.fail(f"{block.name}: {expect!r} never printed after the edit:\n{output}")
    return output


BLOCKS = all_blocks()


def test_docs_have_python_to_run():
    documents = {block.document for block in BLOCKS}
    assert {"README.md", "docs/guide.md", "docs/index.md"} <= documents


@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
def test_docs_block_runs(block):
    run_block(block)


# --- the convention itself: a broken block must fail ----------------------------------------------


def test_docs_runner_fails_a_raising_block():
    (block,) = parse("broken.md", "text\n\n```python\nx = 1\nassert x == 2\n```\n")
    with pytest.raises(pytest.fail.Exception, match=r"broken\.md:4 exited with 1") as failure:
        run_block(block)
    assert 'File "broken.md", line 5' in str(failure.value)  # points at the document's line


def test_docs_runner_files_are_importable_by_later_blocks():
    text = (
        '```python title="shop.py"\nPRICE = 3\n```\n\n'
        "```python\nimport shop\nprint('price', shop.PRICE)\n```\n"
    )
    file_block, user = parse("shop.md", text)
    assert file_block.file == "shop.py"
    assert "price 3" in run_block(user)


def test_docs_runner_fails_a_failing_test_file():
    (block,) = parse("t.md", '```python title="test_x.py"\ndef test_x():\n    assert 1 == 2\n```\n')
    with pytest.raises(pytest.fail.Exception, match="1 failed"):
        run_block(block)


def test_docs_runner_fails_a_block_leaving_a_temp_folder():
    (block,) = parse("t.md", "```python\nimport tempfile\ntempfile.mkdtemp()\n```\n")
    with pytest.raises(pytest.fail.Exception, match=r"left .* in the temp directory"):
        run_block(block)


def test_docs_runner_fails_when_the_expected_text_never_comes():
    text = (
        '```python title="word.py"\nWORD = "old"\n```\n\n'
        '<!-- docs-test: {"edit": ["word.py", "old", "new"], "expect": "new"} -->\n'
        "```python\nimport word\nprint(word.WORD, flush=True)\n```\n"
    )
    _, block = parse("t.md", text)
    with pytest.raises(pytest.fail.Exception, match="never printed"):
        run_block(block)


def test_docs_runner_refuses_an_unknown_info_string():
    with pytest.raises(ValueError, match="unknown info string"):
        parse("t.md", "```python notest\nx = 1\n```\n")
