"""Answers, labels and evidence are compared after Unicode NFC normalisation with zero-width
characters removed: an NFD gold against an NFC output, or a zero-width space in the gold, still
matches."""

from __future__ import annotations

import unicodedata

import pytest

from tracekd.data import get_dataset
from tracekd.data.schema import ContextItem, Example, states_answer
from tracekd.score.answers import score_answer
from tracekd.score.evaluate import score_output
from tracekd.score.steps import evidence_score, label_correct

NFC = "Fianna Fáil"
NFD = unicodedata.normalize("NFD", NFC)
ZWSP = "Fianna\u200b Fáil"


def _example(dataset: str, answers: tuple[str, ...], context: tuple[str, ...] = ("Mary went to Fianna Fáil.",)):
    return Example(
        id="x/1",
        dataset=dataset,
        subset="qa1" if "babi" in dataset else "equal",
        question="Where is Mary?",
        context=tuple(ContextItem(f"s{i}", t) for i, t in enumerate(context)),
        answers=answers,
        label="",
        evidence=("s0",),
    )


@pytest.mark.parametrize("dataset", ["cotempqa", "babi", "msmarco", "synthetic-temporal"])
@pytest.mark.parametrize("gold", [NFD, ZWSP])
def test_every_answer_scorer_normalises(dataset, gold):
    ds = get_dataset(dataset)
    ex = _example(dataset, (gold,))
    assert score_answer(ds, (NFC,), ex, f"The answer is {NFC}.")["correct"]
    assert score_answer(ds, (unicodedata.normalize("NFD", "x"),), ex, "x")["correct"] is False


def test_labels_evidence_and_stated_answers_normalise():
    assert label_correct(unicodedata.normalize("NFD", "während"), "während")
    assert label_correct("equ\u200bal", "equal")
    ex = _example("cotempqa", (NFC,), (unicodedata.normalize("NFD", "Mary went to Fianna Fáil."),))
    assert evidence_score(("Mary went to Fianna\u200b Fáil.",), ex).exact
    assert states_answer(f"She is in {NFD}.", (ZWSP,))


def test_a_whole_output_scores_the_same_in_nfd(tmp_path):
    ds = get_dataset("cotempqa")
    ex = _example("cotempqa", (NFD,))
    row = score_output(ds, ex, f"Evidence: Mary went to {NFC}.\nAnswer: {NFC}.", False)
    assert row["answer"]["correct"], row["parsed"]
