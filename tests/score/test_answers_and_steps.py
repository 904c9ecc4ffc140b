"""Answer scorers and trace-step scorers on small inputs."""

from __future__ import annotations

import pytest

from tracekd.data import ContextItem, Example, get_dataset
from tracekd.data.base import LABEL_SENTENCE_CATEGORY as CATEGORY
from tracekd.score.answers import babi_scores, cotempqa_upstream, msmarco_scores, score_answer, set_scores
from tracekd.score.steps import evidence_score, label_correct, paper_steps, score_steps
from tracekd.traces.parse import parse


def test_set_scores_strict():
    assert set_scores(("The Liberals",), ("Liberals",))["correct"]  # articles and case removed
    s = set_scores(("Liberal Party",), ("Liberal Democrats",))
    assert not s["correct"] and s["f1"] == 0 and s["token_f1"] == pytest.approx(1 / 2)
    s = set_scores(("a1", "b2"), ("a1", "c3"))
    assert not s["correct"] and s["p"] == 0.5 and s["r"] == 0.5 and s["f1"] == 0.5
    assert set_scores(("b2", "a1", "a1"), ("a1", "b2"))["correct"]
    assert not set_scores(None, ("x",))["correct"] and not set_scores((), ("x",))["correct"]


def test_upstream_is_lenient_where_strict_is_not():
    facts = ["A holds the position of mayor from 1990 to 1995.", "A holds the position of senator from 1991 to 1993."]
    q = "While A was holding the position of mayor, which position did A hold concurrently?"
    # the answer embedded in a sentence counts for the original scorer
    assert cotempqa_upstream("assistant\n\nI think it was senator.", ("senator",), q, facts, "S1_R1_O2")["correct"]
    assert not set_scores(("I think it was senator.",), ("senator",))["correct"]
    # the paper's SFT outputs are cut after <answer>: facts cited in the trace do not count
    out = "<think>I need to use the following facts to answer the question: ['A holds the position of senator from 1991 to 1993.']</think> <answer>['mayor']</answer>"
    assert not cotempqa_upstream(out, ("senator",), q, facts, "S1_R1_O2")["correct"]


def test_babi_order():
    assert babi_scores(("apple", "milk"), ("milk", "apple"), 8)["correct"]
    assert not babi_scores(("s", "e"), ("e", "s"), 19)["correct"]
    assert babi_scores(("s,e",), ("s", "e"), 19)["correct"]
    assert babi_scores(("Kitchen",), ("kitchen",), 1)["correct"]
    assert not babi_scores(None, ("kitchen",), 1)["correct"]


def test_msmarco_metrics():
    s = msmarco_scores(("The cost is $20",), ("$20",))
    assert not s["correct"] and 0 < s["f1"] < 1 and 0 < s["rouge_l"] < 1
    s = msmarco_scores(("$20",), ("$20", "20 dollars"))
    assert s["correct"] and s["em"] == 1 and s["rouge_l"] == 1 and s["bleu_1"] == pytest.approx(1.0)
    # ROUGE-L: LCS("a b c d", "a c d e") = 3 -> P = R = 3/4
    assert msmarco_scores(("a1 b2 c3 d4",), ("a1 c3 d4 e5",))["rouge_l"] == pytest.approx(0.75)
    # BLEU-1 with brevity penalty: 2 of 2 unigrams match, hyp len 2 vs ref len 4 -> exp(1 - 4/2)
    assert msmarco_scores(("x1 y2",), ("x1 y2 z3 w4",))["bleu_1"] == pytest.approx(0.36787944, abs=1e-6)
    assert msmarco_scores(("No Answer Present.",), ("No Answer Present.",))["correct"]
    assert not msmarco_scores(("No Answer Present.",), ("$20",))["correct"]
    assert not msmarco_scores(("$20",), ("No Answer Present.",))["correct"]


def _ex():
    ctx = (
        ContextItem("1", "Mary went to the kitchen."),
        ContextItem("2", "John got the milk."),
        ContextItem("3", "Mary went to the kitchen."),
        ContextItem("4", "Mary took the apple."),
    )
    return Example(
        "t/1",
        "synthetic-babi",
        "qa2",
        "Where is the apple?",
        ctx,
        ("kitchen",),
        label="two-supporting-facts",
        evidence=("3", "4"),
    )


def test_evidence_matching():
    ex = _ex()
    # duplicate texts: the match goes to the gold id
    s = evidence_score(("mary went to the kitchen", "Mary took the apple."), ex)
    assert s.exact and s.precision == 1 and s.recall == 1 and s.matched == ("3", "4")
    s = evidence_score(("Mary took the apple.",), ex)
    assert not s.exact and s.precision == 1 and s.recall == 0.5
    s = evidence_score(("Mary took the apple.", "John got the milk.", "Something else."), ex)
    assert s.precision == pytest.approx(1 / 3) and s.unmatched == 1 and not s.exact
    # tolerant: one word off still matches (token F1 >= 0.9), exact does not
    near = ("Mary took the apple today.", "Mary went to the kitchen.")
    assert not evidence_score(near, ex).exact
    assert evidence_score(near, ex, tolerant=True).exact is False  # "apple today" -> F1 0.89 < 0.9
    assert evidence_score(("Mary has taken the apple.", "Mary went to the kitchen."), ex, tolerant=True).exact is False
    assert evidence_score(None, ex).f1 == 0


def test_steps_and_paper_definitions():
    ex = _ex()
    out = "<think>The category of the question asked is: Two-Supporting-Facts.\nI need to use the following facts to answer the question: ['Mary went to the kitchen.', 'Mary took the apple.']</think> <answer>['kitchen']</answer>"
    s = score_steps(parse(out, CATEGORY), ex)
    assert s["label_correct"] and s["evidence"]["exact"] and s["trace_correct"]
    assert label_correct("two supporting facts", "two-supporting-facts") is False
    assert label_correct(None, "x") is False
    # the paper's checks: the label need only occur in the first sentence; under the `any-fact` rule any
    # context fact in the trace counts, under the paper's stated rule only a gold one
    loose = "<think>The category of the question asked is: two-supporting-facts. I need to use the following facts to answer the question: ['John got the milk.']</think>"
    p = paper_steps(loose, ex)
    assert p == {
        "label_correct": True,
        "evidence_correct": False,
        "trace_correct": False,
        "by_rule": {
            "stated": {"evidence_correct": False, "trace_correct": False},
            "any-fact": {"evidence_correct": True, "trace_correct": True},
        },
    }
    gold = loose.replace("John got the milk.", "Mary took the apple.")
    assert paper_steps(gold, ex)["by_rule"]["stated"] == {"evidence_correct": True, "trace_correct": True}
    assert not score_steps(parse(loose, CATEGORY), ex)["evidence"]["exact"]
    assert paper_steps("['kitchen']", ex) is None


def test_dataset_scorers_are_behind_the_interface():
    ex = _ex()
    assert score_answer(get_dataset("synthetic-babi", size=1), ("kitchen",), ex, "")["correct"]
    assert get_dataset("babi").answer_summary({"qa1": 0.97, "qa2": 0.5}) == {"tasks": 2, "tasks_at_or_above_95": 1}
    cot = score_answer(get_dataset("cotempqa"), ("x",), ex.replace(answers=("x",)), "['x']")
    assert cot["correct"] and "upstream" in cot


def test_tolerant_match_on_long_items():
    ctx = (
        ContextItem("f0", "Emma Carlsson Lofdahl is a member of the Liberals in March 11, 2019."),
        ContextItem("f1", "Emma Carlsson Lofdahl is a member of the Vox in July, 2019."),
    )
    ex = Example("c/1", "cotempqa", "equal", "q", ctx, ("Liberals",), label="equal", evidence=("f0",))
    typo = ("Emma Carlsson Lofdahl is a member of the Liberals in March 12, 2019.",)
    assert not evidence_score(typo, ex).exact
    tol = evidence_score(typo, ex, tolerant=True)
    assert tol.exact and tol.matched == ("f0",)


def test_msmarco_any_gold_answer_is_right():
    golds = ("$20", "twenty dollars")
    for pred in (("$20",), ("Twenty dollars.",), ("$20", "twenty dollars")):
        s = msmarco_scores(pred, golds)
        assert s["correct"] and s["em"] == 1 and s["f1"] == 1 and s["rouge_l"] == 1
    s = msmarco_scores(("$20", "$30"), golds)  # every stated answer must match one
    assert not s["correct"] and s["f1"] == pytest.approx(0.5)


def test_upstream_quirks_are_the_originals():
    facts = [
        "A holds the position of assistant professor from 1990 to 1995.",
        "A holds the position of dean from 1991 to 1993.",
        "A holds the position of mayor from 1992 to 1994.",
    ]
    q = "While A was holding the position of dean, which position did A hold?"

    def up(output, gold=("assistant professor",)):
        # S2_R1_O1: the facts' objects are the candidates
        return cotempqa_upstream(output, gold, q, facts, "S2_R1_O1")

    # "assistant" and "think" are deleted anywhere, after lower-casing: this gold never matches
    assert not up("<answer>['Assistant Professor']</answer>")["correct"]
    assert up("<think>I think</think><answer>['x']</answer>", gold=("x",))["correct"]
    # one if/elif chain: after <answer>, cut at </answer>; the candidate also in the question is dropped
    assert up("answer the question based on it <answer>['dean']</answer> trailing", gold=("dean",))["acc"] == 0
    assert up("<answer>['senator']</answer> mayor", gold=("senator",))["correct"]
    # " answer " keeps only the text up to the next " answer "
    assert up("my answer is senator answer mayor", gold=("senator",))["correct"]
    # no candidate found: the whole remaining text, normalised (punctuation removed, articles kept)
    assert up("answer: Sen-ator!", gold=("senator",))["correct"]
    assert not up("answer: the sen-ator", gold=("senator",))["correct"]
    # f1 over the de-duplicated candidate lists
    s = up("<answer>['mayor', 'senator', 'senator']</answer>", gold=("senator",))
    assert not s["correct"] and s["p"] == 0.5 and s["r"] == 1 and s["f1"] == pytest.approx(2 / 3)


def test_upstream_order_is_deterministic():
    """Equal-length candidates, both in the output and the question: the original skipped
    whichever its set order gave first; tracekd skips the alphabetically first, whatever the
    order of the facts."""
    facts = [
        "A works for Alpha from 1990 to 1995.",
        "A works for Omega from 1991 to 1993.",
        "A works for Delta in 1992.",
    ]
    q = "While A worked for Alpha and Omega, which employer did A work for?"
    for order in (facts, facts[::-1], facts[1:] + facts[:1]):
        s = cotempqa_upstream("<answer>['Alpha', 'Omega']</answer>", ("omega",), q, order, "S2_R1_O1")
        assert s["correct"]  # "alpha" dropped as the question's, "omega" predicted


def test_upstream_totals_round_as_the_original():
    from tracekd.score.answers import upstream_totals

    rows = [
        {"correct": True, "f1": 1.0, "p": 1.0, "r": 1.0},
        {"correct": False, "f1": 0.5, "p": 1.0, "r": 1 / 3},
        {"correct": False, "f1": 0.0, "p": 0.0, "r": 0.0},
    ]
    assert upstream_totals(rows) == {"acc": 33.3, "f1": 50.0, "p": 66.7, "r": 44.4, "avg": 41.7}


def test_authors_code_port_keeps_its_quirks():
    """The authors' get_confusion_matrices: the gold row is the first CSV row whose answer text
    contains the record's first gold answer (here another question's), all of that row's facts
    count as gold (their get_gold_facts reads the answers from the facts column), and a record
    that matches no row reuses the previous record's row."""
    from tracekd.score.steps import authors_code_steps

    rows = [
        {
            "answer": "['Paris Saint-Germain']",
            "facts": "['A plays for B.', 'A plays for Paris Saint-Germain.']",
            "reasoning": "The temporal relation between the event in question and the event in context is: during.\n",
        },
        {
            "answer": "['Paris']",
            "facts": "['C lives in Paris.']",
            "reasoning": "The temporal relation between the event in question and the event in context is: during.\n",
        },
    ]
    head = "<think>The temporal relation between the event in question and the event in context is: during."
    own = f"{head}\nI need to use the following facts to answer the question: ['C lives in Paris.']</think>"
    other = f"{head}\nI need to use the following facts to answer the question: ['A plays for B.']</think>"
    steps, row = authors_code_steps(own, "Paris", rows, None)
    assert row is rows[0] and steps == {"evidence_correct": False, "trace_correct": False, "label_correct": True}
    steps, _ = authors_code_steps(other, "Paris", rows, None)  # a non-answer fact of the other row counts
    assert steps == {"evidence_correct": True, "trace_correct": True, "label_correct": True}
    steps, row = authors_code_steps(other, "Lyon", rows, rows[1])  # no row matches: the previous one
    assert row is rows[1] and steps["evidence_correct"] is False
    assert authors_code_steps("['x']", "Paris", rows, None)[0] is None  # no think: not evaluated


@pytest.mark.parametrize(
    "dataset,subset,gold,pred",
    [
        ("cotempqa", "equal", ("Paris", "Lyon"), ("Paris and Lyon",)),  # a conjunction list
        ("babi", "qa19", ("n,w",), ("north,west",)),  # compass abbreviations
        ("babi", "qa7", ("2",), ("two",)),  # a number word
        ("msmarco", "x", ("Yes",), ("Yes, it can.",)),  # a leading yes / no
    ],
)
def test_strict_scorers_refuse_what_the_lenient_normalisation_accepts(dataset, subset, gold, pred):
    """The strict scorers' choices (docs/scoring.md, "Strict and lenient answers"): each of these is
    wrong under the strict scorer (the default, `correct`) and right under the lenient one
    (`lenient_correct`, reported beside it as `answer_lenient_accuracy`)."""
    from tracekd.score.answers import score_answer

    label = {"qa19": "path-finding", "qa7": "counting"}.get(subset)
    ex = Example("t/9", dataset, subset, "q?", (ContextItem("1", "A is x."),), gold, label=label)
    got = score_answer(get_dataset(dataset), pred, ex, "")
    assert (got["correct"], got["lenient_correct"]) == (False, True)
    # order still matters for a path; a wrong answer stays wrong
    if subset == "qa19":
        assert not score_answer(get_dataset(dataset), ("west,north",), ex, "")["lenient_correct"]
    assert not score_answer(get_dataset(dataset), ("Rome",), ex, "")["lenient_correct"]
