"""The parser on the paper's 12 published model-output files.

The expected counts are computed here from the raw text with plain string operations, not
with the parser's regular expressions.
"""

from __future__ import annotations

import json

import pytest

from independent import label_of, lines
from tracekd.data.cotempqa import CoTempQA
from tracekd.traces.parse import parse

SUBSETS = ("during", "equal", "mix", "overlap")
CONDITIONS = ("sft-adapter", "sft-adapter-reasoning-facts", "sft-adapter-reasoning-facts-perturbed")
EVIDENCE = "I need to use the following facts to answer the question:"


def _has_label(p: str) -> bool:
    return label_of(p) is not None


def _has_answer(p: str) -> bool:
    if "<answer>" in p:
        return bool(p.split("<answer>", 1)[1].split("</answer>", 1)[0].strip(" \n[]'\""))
    if any(ln.lower().startswith("answer:") and ln[7:].strip() for ln in lines(p)):
        return True
    if "</think>" in p:
        return bool(p.split("</think>", 1)[1].strip())
    if "<think>" in p or EVIDENCE in p or _has_label(p):
        return False
    body = p.strip()
    if body.startswith("assistant"):
        body = body[len("assistant") :]
    return bool(body.strip(" \n[]'\""))


@pytest.mark.parametrize("subset", SUBSETS)
@pytest.mark.parametrize("condition", CONDITIONS)
def test_parser_yield_on_published_outputs(reference_outputs, subset, condition):
    path = reference_outputs / "evaluation_outputs" / subset / f"Llama-3.2-1B-Instruct-{condition}_default.json"
    preds = [json.loads(line)["prediction"] for line in path.open()]
    assert len(preds) == {"during": 619, "equal": 87, "mix": 113, "overlap": 131}[subset]
    parsed = [parse(p, CoTempQA.label_sentence) for p in preds]
    expected = (
        sum(map(_has_label, preds)),
        sum(EVIDENCE in p for p in preds),
        sum(map(_has_answer, preds)),
    )
    got = (
        sum(t.label is not None for t in parsed),
        sum(t.evidence is not None for t in parsed),
        sum(t.answers is not None for t in parsed),
    )
    assert got == expected
    if condition == "sft-adapter":
        # answer-only models write a bare list: no trace steps, an answer for every output
        assert got == (0, 0, len(preds))
    else:
        assert got[0] >= 0.8 * len(preds) and got[1] >= 0.95 * len(preds)


@pytest.mark.parametrize("condition", CONDITIONS[1:])
def test_label_and_evidence_values_on_published_outputs(reference_outputs, condition):
    """The label as written (paraphrased label sentences included: 34 of the 1,900 trace outputs
    carry only a paraphrase), and every item of an evidence list followed by a full stop."""
    paraphrased = stopped = 0
    for subset in SUBSETS:
        path = reference_outputs / "evaluation_outputs" / subset / f"Llama-3.2-1B-Instruct-{condition}_default.json"
        for line in path.open():
            p = json.loads(line)["prediction"]
            got = parse(p, CoTempQA.label_sentence)
            assert got.label == label_of(p), p
            paraphrased += label_of(p) is not None and "the temporal relation" not in p.lower()
            if EVIDENCE in p and "]." in p.split(EVIDENCE, 1)[1].split("</think>", 1)[0]:
                listed = p.split(EVIDENCE, 1)[1].split("].", 1)[0]
                assert len(got.evidence) == listed.count("', '") + 1
                stopped += 1
    assert (paraphrased, stopped) == {
        "sft-adapter-reasoning-facts": (7, 5),
        "sft-adapter-reasoning-facts-perturbed": (27, 0),
    }[condition]
