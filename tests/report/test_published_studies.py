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
        # results.json of a study with interventions is about 1.1 MB of indented JSON (about 150 kB in git)
        assert all(p.stat().st_size < 2_000_000 for p in study.rglob("*") if p.is_file())


@pytest.mark.parametrize("study", STUDIES, ids=[p.name for p in STUDIES])
def test_report_rebuilds_byte_identically(study, tmp_path):
    shutil.copy(study / "results.json", tmp_path / "results.json")
    r = subprocess.run([sys.executable, "-m", "tracekd", "report", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "report.md").read_bytes() == (study / "report.md").read_bytes()
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(p.name for p in (study / "plots").iterdir())


@pytest.mark.parametrize("study", STUDIES, ids=[p.name for p in STUDIES])
def test_the_published_rows_recompute_the_published_numbers(study):
    """The per-item rows committed beside results.json give back its numbers: each group's answer
    accuracy and rates (rows.jsonl.gz), and each group's intervention measures (interventions.jsonl.gz)."""
    import gzip
    import json

    from tracekd.report.results import read_rows_file
    from tracekd.score.interventions import measures

    results = json.loads((study / "results.json").read_text())
    assert results.get("rows"), "the per-item rows are not published"
    rows = read_rows_file(study / results["rows"])
    for g in results["groups"]:
        by_seed = rows[(g["dataset"], g["model"], g["condition"])]
        outputs = [r for rs in by_seed.values() for r in rs]
        assert len(outputs) == g["outputs"]
        assert sum(r["answer"]["correct"] for r in outputs) / len(outputs) == pytest.approx(
            g["rates"]["answer_accuracy"]["mean"]
        )
    if not results.get("intervention_rows"):
        return
    by_group: dict[tuple, dict] = {}
    for line in gzip.decompress((study / results["intervention_rows"]).read_bytes()).decode().splitlines():
        r = json.loads(line)
        key = (r.pop("dataset"), r.pop("model"), r.pop("condition"))
        by_group.setdefault(key, {}).setdefault(r["seed"], []).append(r)
    with_interventions = [g for g in results["groups"] if g.get("interventions")]
    assert with_interventions and len(with_interventions) == len(by_group)
    for g in with_interventions:
        label = f"{g['dataset']} / {g['model']} / {g['condition']}"
        again = json.loads(json.dumps(measures(by_group[(g["dataset"], g["model"], g["condition"])], label)))
        assert again == g["interventions"]
