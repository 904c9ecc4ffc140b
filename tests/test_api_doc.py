"""docs/api.md runs: its ```python blocks, in order, in an empty folder (prepare -> train ->
generate -> evaluate on the tiny model), as a reader would paste them."""

from __future__ import annotations

import re

from conftest import ROOT

DOC = ROOT / "docs" / "api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_api_doc_runs(tmp_path, monkeypatch, capsys):
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) == 4  # prepare, train, generate, evaluate
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "api_doc"}
    for i, block in enumerate(blocks, 1):
        exec(compile(block, f"{DOC}:block {i}", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "30 train and 10 test examples" in printed
    assert "3 steps on 30 examples" in printed
    assert "10 outputs; answer accuracy" in printed
    assert (tmp_path / "walk" / "scores.json").is_file()


def test_blocks_are_found():
    """The extraction itself: fenced python blocks only, each whole."""
    text = "a\n```python\nx = 1\ny = 2\n```\n```bash\nls\n```\n```python\nz = 3\n```\n"
    assert python_blocks(text) == ["x = 1\ny = 2\n", "z = 3\n"]
