"""The README's Python blocks are complete programs: each runs as written, in an empty folder."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_python_quick_starts():
    assert len(BLOCKS) >= 3
    assert sum("assert " in block for block in BLOCKS) >= 2  # the examples check what they claim


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, tmp_path, monkeypatch):
    """Each block runs in an empty folder; its own ``assert`` lines are the checks (streamed == offline, ...)."""
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {"__name__": "__readme__"})
