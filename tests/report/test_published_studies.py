"""The published studies (docs/study/<name>/): `tracekd report` rebuilds each committed report.md
byte for byte from its committed results.json, and every committed file stays small."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

STUDIES = sorted(p.parent for p in (Path(__file__).resolve().parents[2] / "docs" / "study").glob("*/results.json"))


def test_a_study_is_published():
    assert STUDIES, "docs/study/ holds no study"
    for study in STUDIES:
        assert (study / "report.md").is_file() and (study / "README.md").is_file()
        assert all(p.stat().st_size < 1_000_000 for p in study.rglob("*") if p.is_file())


@pytest.mark.parametrize("study", STUDIES, ids=[p.name for p in STUDIES])
def test_report_rebuilds_byte_identically(study, tmp_path):
    shutil.copy(study / "results.json", tmp_path / "results.json")
    r = subprocess.run([sys.executable, "-m", "tracekd", "report", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "report.md").read_bytes() == (study / "report.md").read_bytes()
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(p.name for p in (study / "plots").iterdir())
