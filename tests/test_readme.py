"""The README's quick start runs exactly as written and prints what it says."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_quick_start():
    assert len(_python_blocks()) >= 1


def test_readme_quick_start_runs_and_prints_its_comments():
    for block in _python_blocks():
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            exec(compile(block, str(README), "exec"), {})
        printed = output.getvalue().splitlines()
        # Each print(...) line carries the expected output in its comment.
        expected = [
            line.split("#", 1)[1].strip().split(",")[0]
            for line in block.splitlines()
            if line.startswith("print(") and "#" in line
        ]
        assert len(printed) == len(expected)
        for got, want in zip(printed, expected, strict=True):
            assert got.strip() == want
