"""The hub code paths, with `datasets.load_dataset` replaced by in-memory data in the hub schemas."""

from __future__ import annotations

import datasets
import pytest

from tracekd.data import get_dataset
from tracekd.errors import InputError


@pytest.fixture
def fake_hub(monkeypatch):
    calls = []

    def install(tables):
        def load_dataset(path, name=None, **kwargs):
            calls.append((path, name, kwargs))
            key = name or path
            return datasets.DatasetDict(
                {split: datasets.Dataset.from_list(rows) for split, rows in tables[key].items()}
            )

        monkeypatch.setattr(datasets, "load_dataset", load_dataset)
        return calls

    return install


def test_cotempqa_hub(fake_hub):
    row = {
        "index": 3,
        "triple_element": "S1_R1_O2",
        "question": "While A was a member of B, which political party did A belong to concurrently?",
        "facts": [
            "A is a member of the B from 1990 to 1995.",
            "A is a member of the C from 1991 to 1994.",
            "A is a member of the D in 1970.",
        ],
        "answer": ["C"],
    }
    calls = fake_hub({"Warrieryes/CotempQA": {"equal": [row], "during": [dict(row, index=4)]}})
    exs = get_dataset("cotempqa", subsets=["equal", "during"]).load("Warrieryes/CotempQA")
    assert calls[0][2]["data_files"] == {"equal": "equal.json", "during": "during.json"}
    assert [ex.id for ex in exs] == ["cotempqa/equal/3", "cotempqa/during/4"]
    assert exs[0].evidence == ("f0", "f1") and exs[0].anchor == ("f0",) and exs[1].label == "during"


def test_babi_hub(fake_hub):
    story = {
        "story": {
            "id": ["1", "2", "3"],
            "type": [0, 0, 1],
            "text": ["Mary went to the garden.", "John went home.", "Where is Mary?"],
            "supporting_ids": [[], [], ["1"]],
            "answer": ["", "", "garden"],
        }
    }
    calls = fake_hub({"en-qa1": {"train": [story], "test": [story]}})
    exs = get_dataset("babi", subsets=["1"]).load("facebook/babi_qa")
    assert calls[0][:2] == ("facebook/babi_qa", "en-qa1")
    assert [(ex.split, ex.answers, ex.evidence, ex.label) for ex in exs] == [
        ("train", ("garden",), ("1",), "single-supporting-fact"),
        ("test", ("garden",), ("1",), "single-supporting-fact"),
    ]


def test_msmarco_hub(fake_hub):
    rec = {
        "query_id": 9,
        "query": "how tall is x",
        "query_type": "NUMERIC",
        "answers": ["No Answer Present."],
        "wellFormedAnswers": [],
        "passages": {"is_selected": [0, 0], "passage_text": ["x is tall", "y"], "url": ["u", "v"]},
    }
    calls = fake_hub(
        {"v2.1": {"train": [rec], "validation": [dict(rec, query_id=10)], "test": [dict(rec, query_id=11)]}}
    )
    exs = get_dataset("msmarco").load("microsoft/ms_marco")
    assert calls[0][:2] == ("microsoft/ms_marco", "v2.1")
    assert [(ex.id, ex.split, ex.label) for ex in exs] == [
        ("msmarco/9", "train", "numeric"),
        ("msmarco/10", "test", "numeric"),
    ]
    assert exs[0].answers == ("No Answer Present.",) and set(exs[0].flags) == {
        "no_answer_present",
        "no_selected_passage",
    }


def test_hub_failure_is_an_input_error(monkeypatch):
    def boom(*a, **k):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", boom)
    with pytest.raises(InputError, match="could not load hub dataset 'microsoft/ms_marco'"):
        get_dataset("msmarco").load("microsoft/ms_marco")
