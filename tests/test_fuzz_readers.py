"""Fuzzing the input readers: random bytes, and random JSON values in every field of otherwise good
records. The only exception a reader may raise is tracekd's InputError (and a reader that accepts
its input must give examples the rest of the pipeline can use)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracekd.data import get_dataset
from tracekd.errors import InputError

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
COTEMPQA = {
    "index": 3,
    "triple_element": "S1_R1_O2",
    "question": "While Ann Lee was a member of Green Party, which political party did Ann Lee belong to within the same time interval?",
    "facts": [
        "Ann Lee is a member of the Green Party from 2001 to 2005.",
        "Ann Lee is a member of the Civic Forum from 2002 to 2004.",
    ],
    "answer": ["Civic Forum"],
}
MSMARCO = {
    "query_id": 7,
    "query": "what is cost of sales",
    "query_type": "DESCRIPTION",
    "answers": ["the cost of goods"],
    "passages": {"is_selected": [0, 1], "passage_text": ["Sales are sales.", "The cost of goods sold."]},
    "wellFormedAnswers": [],
}
BABI = "1 Mary moved to the bathroom.\n2 John went to the hallway.\n3 Where is Mary?\tbathroom\t1\n"
FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _mutate(record: dict, data) -> dict:
    """The record with one field (possibly nested one level) replaced by any JSON value, or removed."""
    rec = json.loads(json.dumps(record))
    key = data.draw(st.sampled_from(sorted(rec)))
    if isinstance(rec[key], dict) and data.draw(st.booleans()):
        rec, top = rec[key], rec
        key = data.draw(st.sampled_from(sorted(rec)))
    else:
        top = rec
    if data.draw(st.booleans()):
        rec[key] = data.draw(JSON)
    else:
        del rec[key]
    return top


def _only_input_errors(fn, *args):
    try:
        return fn(*args)
    except InputError:
        return None


def _load(name: str, path: Path, **options):
    ds = get_dataset(name, **options)
    examples = _only_input_errors(ds.load, str(path))
    for ex in examples or ():
        ex.texts(ex.evidence)  # the evidence ids name context items
        assert all(isinstance(a, str) and a for a in ex.answers)
    return examples


@FUZZ
@given(
    st.binary(max_size=300),
    st.sampled_from(["cotempqa", "msmarco", "babi", "jsonl", "json", "yaml", "predictions", "test"]),
)
def test_random_bytes(blob, reader):
    from tracekd.experiment.config import load_config
    from tracekd.generate.run import done_ids
    from tracekd.jsonio import read_json, read_json_records, read_jsonl
    from tracekd.score.evaluate import load_test_set
    from tracekd.traces.records import read_sft_records

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        name = {
            "cotempqa": "equal.json",
            "babi": "qa1_single-supporting-fact_train.txt",
            "yaml": "c.yaml",
            "test": "test.jsonl",
        }.get(reader, "x.json")
        f = d / name
        f.write_bytes(blob)
        calls = {
            "cotempqa": lambda: _load("cotempqa", f),
            "msmarco": lambda: _load("msmarco", f),
            "babi": lambda: _load("babi", f, subsets=["qa1"]),
            "jsonl": lambda: list(read_jsonl(f)) + list(read_json_records(f)),
            "json": lambda: read_json(f),
            "yaml": lambda: load_config(f),
            "predictions": lambda: done_ids(f),
            "test": lambda: (load_test_set(d), read_sft_records(d, "test")),
        }
        _only_input_errors(calls[reader])


@FUZZ
@given(st.data())
def test_random_values_in_cotempqa_records(data):
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "equal.json"
        f.write_text(json.dumps(COTEMPQA) + "\n" + json.dumps(_mutate(COTEMPQA, data)) + "\n")
        _load("cotempqa", f)


@FUZZ
@given(st.data())
def test_random_values_in_msmarco_records(data):
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "ms.json"
        f.write_text(json.dumps([MSMARCO, {**_mutate(MSMARCO, data), "query_id": 8}]))
        _load("msmarco", f)


@FUZZ
@given(st.lists(st.sampled_from(["1", "2", "3", " ", "\t", "?", ",", "Mary", "\n", "\r", "é", "\x00"]), max_size=40))
def test_random_babi_lines(tokens):
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "qa1_single-supporting-fact_train.txt"
        f.write_text(BABI + "".join(tokens))
        _load("babi", f, subsets=["qa1"])


def _prepared(d: Path) -> list[dict]:
    from tracekd.data.config import DatasetConfig
    from tracekd.prepare import prepare

    prepare(DatasetConfig(name="synthetic-babi", size=25), "correct", "tagged", 0, d)
    return [json.loads(x) for x in (d / "test.jsonl").read_text().splitlines()]


@FUZZ
@given(st.data())
def test_random_values_in_prepared_records_and_predictions(data):
    """A hand-edited test.jsonl or predictions file: refused with a message, or scored."""
    from tracekd.score.evaluate import evaluate

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        test = _prepared(d / "data")
        i = data.draw(st.integers(0, len(test) - 1))
        if data.draw(st.booleans()):
            test[i] = _mutate(test[i], data)
            (d / "data" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))
            preds = [{"id": r.get("id"), "output": "x"} for r in test]
        else:
            preds = [{"id": r["id"], "output": "x"} for r in test]
            preds[i] = _mutate(preds[i], data)
        (d / "p.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))
        _only_input_errors(evaluate, d / "data", d / "p.jsonl", d / "s.json")


CONFIG = {
    "name": "f",
    "datasets": [{"name": "synthetic-babi", "size": 20, "limit_train": 10}],
    "models": ["tiny-random"],
    "conditions": ["baseline", "correct"],
    "seeds": [0, 1],
    "template": "tagged",
    "train": {"max_steps": 2, "scheduler": "linear"},
    "generate": {"max_new_tokens": 8},
}


@FUZZ
@given(st.data())
def test_random_values_in_a_config(data):
    from tracekd.experiment.config import load_config

    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "c.yaml"
        cfg = _mutate(CONFIG, data)
        if data.draw(st.booleans()):
            cfg["datasets"] = [_mutate(CONFIG["datasets"][0], data)]
        f.write_text(yaml.safe_dump(cfg, allow_unicode=True))
        _only_input_errors(load_config, f)
