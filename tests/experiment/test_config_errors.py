"""Config errors that used to appear only at run time (after config.json was written) are caught by
validation, name their key, and leave nothing behind; names that become folder names cannot
escape the run folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tracekd.errors import InputError
from tracekd.experiment.config import load_config

BASE = {
    "name": "hard",
    "datasets": [{"name": "synthetic-babi", "size": 20}],
    "models": ["tiny-random"],
    "conditions": ["baseline", "correct"],
    "seeds": [0],
    "train": {"max_steps": 2, "batch_size": 4, "grad_accum": 1},
    "generate": {"max_new_tokens": 8},
}


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "tracekd", *map(str, args)], capture_output=True, text=True, **kw)


def _config(tmp_path: Path, **change) -> Path:
    cfg = {**BASE, **change}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"datasets": [{"name": "synthetic-babi"}]}, "datasets[0].size: dataset 'synthetic-babi' needs a size"),
        (
            {"datasets": [{"name": "synthetic-babi", "size": 20, "ir_rule": "paper"}]},
            "datasets[0].ir_rule: dataset 'synthetic-babi' does not take this option",
        ),
        (
            {"datasets": [{"name": "babi", "source": "."}], "_babi_subset": "qa99"},
            "datasets[0].subsets: bAbI tasks are 1-20",
        ),
        (
            {"datasets": [{"name": "synthetic-babi", "size": 20, "source": "x.json"}]},
            "datasets[0].source: dataset 'synthetic-babi' is generated",
        ),
        ({"datasets": [{"name": "cotempqa", "source": "no-such-file.json"}]}, "datasets[0].source: path not found"),
        ({"datasets": [{"name": "cotempqa", "source": "nosuchfolder"}]}, "datasets[0].source: path not found"),
        ({"datasets": [{"name": "cotempqa"}]}, "datasets[0].source: dataset 'cotempqa' needs a source"),
        (
            {"datasets": [{"name": "msmarco", "source": ".", "subsets": ["colour"]}]},
            "datasets[0].subsets: unknown MS MARCO query type",
        ),
        ({"train": {"scheduler": "cosin"}}, "train.scheduler: unknown scheduler 'cosin'"),
        ({"train": {"report_to": "wandbb"}}, "train.report_to: unknown report_to 'wandbb'"),
        (
            {"train": {"lora_targets": ["q_proj", "qq_proj"]}},
            "train.lora_targets: model 'tiny-random' (models[0]) has no module matching 'qq_proj'",
        ),
        (
            {"train": {"lora_targets": "(unclosed"}},
            "train.lora_targets: lora_targets is 'all-linear', a regular expression",
        ),
        ({"seeds": [-1]}, "seeds[0]: Input should be greater than or equal to 0"),
        ({"seeds": [2**40]}, "seeds[0]: Input should be less than or equal to 4294967295"),
        ({"seeds": [0, 0]}, "seeds: a seed is listed twice"),
        ({"datasets": [{"name": "synthetic-babi", "size": 20, "data_seed": -5}]}, "datasets[0].data_seed"),
        (
            {"models": [{"name": "../../../../../escaped_model", "model": "tiny-random"}]},
            "models[0].name: '../../../../../escaped_model' is not a safe name",
        ),
        ({"name": "../../x"}, "name: '../../x' is not a safe name"),
        ({"models": ["./some/../x"]}, "models[0].model: unknown model"),
    ],
)
def test_run_time_errors_are_validation_errors(tmp_path, change, needle):
    subset = change.pop("_babi_subset", None)
    if subset:
        change["datasets"][0]["subsets"] = [subset]
    path = _config(tmp_path, **change)
    with pytest.raises(InputError) as e:
        load_config(path)
    assert needle in str(e.value) and str(path) in str(e.value)


def test_dry_run_catches_them_and_nothing_is_written(tmp_path):
    path = _config(tmp_path, train={"scheduler": "cosin"})
    for extra in (["--dry-run"], []):
        r = _cli("run", path, "--out", tmp_path / "run", *extra)
        assert r.returncode == 2 and "train.scheduler: unknown scheduler 'cosin'" in r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]
    # the corrected config then runs in a folder that was never touched
    path = _config(tmp_path, name="../../x")
    r = _cli("run", path, cwd=tmp_path)
    assert r.returncode == 2 and "name: '../../x' is not a safe name" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_duplicate_yaml_keys_are_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(BASE) + "seeds: [1]\n")
    with pytest.raises(InputError, match=r"c.yaml:\d+: not valid YAML \(duplicate key 'seeds'\)"):
        load_config(path)
    path.write_text("name: x\ntrain:\n  lr: 1.0e-3\n  lr: 2.0e-3\n")
    with pytest.raises(InputError, match=r"c.yaml:4: not valid YAML \(duplicate key 'lr'\)"):
        load_config(path)


def test_config_not_utf8(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"name: ok\n# caf\xe9\n")
    with pytest.raises(InputError, match=r"c.yaml:2: not valid UTF-8 \(byte 0xe9 at column 6\)"):
        load_config(path)


def test_a_bare_hub_id_gets_its_last_part_as_name(tmp_path):
    cfg = load_config(_config(tmp_path, models=["tiny-random", "some-org/Some-Model-1B"]))
    assert [m.name for m in cfg.models] == ["tiny-random", "Some-Model-1B"]


def test_paths_a_run_writes_stay_inside_it(tmp_path):
    from tracekd.experiment.runner import Cell, contained

    cfg = load_config(_config(tmp_path))
    cell = Cell(cfg.datasets[0], cfg.models[0], "correct", 0)
    run = tmp_path / "run"
    assert contained(run, cell.folder(run)) == cell.folder(run)
    # names are validated; should one get past (an object built by hand), the runner still refuses
    bad = Cell(cfg.datasets[0], cfg.models[0].model_copy(update={"name": "../../../../escaped"}), "correct", 0)
    with pytest.raises(InputError, match="would write outside the run folder"):
        contained(run, bad.folder(run))
