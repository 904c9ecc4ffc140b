"""The built wheel ships what [tool.setuptools.package-data] lists: py.typed (type checkers read
tracekd's annotations) and the human study's templates."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from conftest import ROOT


def test_wheel_ships_py_typed_and_templates(tmp_path):
    src = tmp_path / "src"
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", ".", "-w", "dist"],
        cwd=tmp_path,
        check=True,
    )
    (wheel,) = (tmp_path / "dist").glob("tracekd-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "tracekd/py.typed" in names
    assert "tracekd/humanstudy/templates/item.html" in names
    assert "tracekd/score/stats.py" in names
