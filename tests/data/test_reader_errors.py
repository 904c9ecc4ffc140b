"""Readers name what is wrong: a bAbI question line without tabs (not a story sentence), a JSON
object given as MS MARCO records (not "not valid JSON" at line 2), a truncated adapter weights file
at generate (not a traceback)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tracekd.data import get_dataset
from tracekd.data.config import DatasetConfig
from tracekd.errors import InputError
from tracekd.prepare import prepare
from tracekd.train.options import TrainOptions
from tracekd.train.sft import train

RECORD = {
    "query_id": 1,
    "query": "what is x",
    "query_type": "DESCRIPTION",
    "answers": ["x is y"],
    "passages": {"is_selected": [0, 1], "passage_text": ["a", "x is y"]},
}


def test_a_babi_question_without_tabs_is_an_error(tmp_path):
    f = tmp_path / "qa1_single-supporting-fact_train.txt"
    f.write_text("1 Mary went to the kitchen.\n2 Where is Mary? kitchen 1\n")
    with pytest.raises(InputError) as e:
        get_dataset("babi").read(str(f))
    assert str(e.value).startswith(f"{f}:2: bAbI question line needs 'question<TAB>answer<TAB>supporting ids'")


def test_a_json_object_is_not_a_list_of_msmarco_records(tmp_path):
    f = tmp_path / "ms.json"
    f.write_text(json.dumps(RECORD, indent=2))
    with pytest.raises(InputError) as e:
        get_dataset("msmarco").read(str(f))
    assert str(e.value) == (
        f"{f}: is one JSON object; expected a JSON array of records or JSON Lines (one record a line)"
    )
    f.write_text(json.dumps([RECORD], indent=2))  # the same record in an array is read
    assert len(get_dataset("msmarco").read(str(f))) == 1


def test_a_truncated_adapter_is_one_line_at_generate(tmp_path):
    prepare(DatasetConfig(name="synthetic-babi", size=20), "correct", "tagged", 0, tmp_path / "d")
    train(tmp_path / "d", "tiny-random", tmp_path / "t", TrainOptions(max_steps=1, batch_size=2))
    weights = tmp_path / "t" / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    args = ["generate", "--data", tmp_path / "d", "--model", "tiny-random", "--out", tmp_path / "p.jsonl"]
    r = subprocess.run(
        [sys.executable, "-m", "tracekd", *map(str, args), "--adapter", tmp_path / "t" / "adapter", "--limit", "2"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{weights}: damaged weights file" in r.stderr
