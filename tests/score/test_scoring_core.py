"""Precise unit tests of the scoring core (score/stats, steps, answers; traces/parse, conditions),
written to kill the mutants `make mutation` showed surviving (docs/testing.md). Each test pins a
value that a one-token change to the code would alter."""

from __future__ import annotations

import json
import math
import warnings
from collections import Counter

import numpy as np
import pytest

from recompute import wilson as wilson_formula
from tracekd.data import ContextItem, Example
from tracekd.data.base import LABEL_SENTENCE_CATEGORY
from tracekd.errors import InputError
from tracekd.score import stats
from tracekd.score.answers import babi_scores, cotempqa_upstream, msmarco_scores, set_scores, upstream_totals
from tracekd.score.stats import (
    ItemBootstrap,
    _f,
    association,
    design_effect,
    regression,
    stratified,
    table_2x2,
    wilson,
)
from tracekd.score.steps import (
    EvidenceScore,
    evidence_score,
    paper_steps,
    retrieved,
    score_steps,
)
from tracekd.traces.conditions import distractors, make_targets, perturbation_counts, wrong_evidence, wrong_label
from tracekd.traces.parse import parse as parse_trace
from tracekd.traces.parse import parse_list
from tracekd.traces.render import Trace


def test_upstream_port_reproduces_every_published_file(reference_outputs):
    """The CoTempQA port record by record on the paper's 12 published files: the five totals of
    each equal the published evaluation_results exactly (the fast route: only the scorer)."""
    files = sorted((reference_outputs / "evaluation_outputs").glob("*/*.json"))
    assert len(files) == 12
    for path in files:
        with path.open(encoding="utf-8") as f:
            recs = [json.loads(line) for line in f]
        scores = [
            cotempqa_upstream(r["prediction"], r["gold"], r["question"], r["facts"], r["triple_element"]) for r in recs
        ]
        published = json.loads((reference_outputs / "evaluation_results" / path.parent.name / path.name).read_text())
        assert upstream_totals(scores) == published, path.name


# -- score/steps.py -------------------------------------------------------------------------------
def _ex(context: tuple[str, ...], evidence=(), anchor=(), answer_facts=(), label="during", answers=("x",)) -> Example:
    return Example(
        "core/1",
        "cotempqa",
        "during",
        "While Ann was mayor, what did Ann do?",
        tuple(ContextItem(f"f{i}", t) for i, t in enumerate(context)),
        answers,
        label=label,
        evidence=evidence,
        anchor=anchor,
        answer_facts=answer_facts,
    )


FACTS = (
    "Ann holds the position of mayor from 1990 to 1995.",
    "Ann works for Acme from 1991 to 1993.",
    "Ann attended Oxford in 1975.",
    "Ann plays for Lyon in 1980.",
)


def test_evidence_scores_without_a_list():
    assert evidence_score(None, _ex(FACTS, ("f0",))) == EvidenceScore(0.0, 0.0, 0.0, False, (), 0)


@pytest.mark.parametrize(
    "cited,p,r,f1,exact",
    [
        ((FACTS[0], FACTS[1]), 1.0, 1.0, 1.0, True),
        ((FACTS[0],), 1.0, 0.5, 2 / 3, False),  # p != r: F1 = 2pr / (p + r)
        ((FACTS[0], FACTS[2]), 0.5, 0.5, 0.5, False),  # p == r
        ((FACTS[0], FACTS[1], FACTS[2]), 2 / 3, 1.0, 0.8, False),
        ((FACTS[2], FACTS[3]), 0.0, 0.0, 0.0, False),  # p + r == 0
        ((), 0.0, 0.0, 0.0, False),  # nothing cited, gold not empty
    ],
)
def test_evidence_precision_recall_f1(cited, p, r, f1, exact):
    s = evidence_score(cited, _ex(FACTS, ("f0", "f1")))
    assert (s.precision, s.recall, s.exact) == (pytest.approx(p), pytest.approx(r), exact)
    assert s.f1 == pytest.approx(f1, abs=1e-12)


def test_evidence_without_gold_items():
    """An example with no gold evidence: citing nothing is exact (precision and recall 1)."""
    ex = _ex(FACTS)
    assert evidence_score((), ex) == EvidenceScore(1.0, 1.0, 1.0, True, (), 0)
    s = evidence_score((FACTS[2],), ex)
    assert (s.precision, s.recall, s.f1, s.exact, s.matched) == (0.0, 1.0, 0.0, False, ("f2",))


def test_equal_texts_resolve_to_the_anchor_or_answer_fact():
    """Two context items with one text: the anchor (or answer-bearing) one is the one cited,
    also when the gold evidence (the paper's rule) holds neither."""
    ctx = (FACTS[0], FACTS[0], FACTS[1], FACTS[1], FACTS[2])
    ex = _ex(ctx, evidence=("f4",), anchor=("f1",), answer_facts=("f3",))
    s = evidence_score((FACTS[0], FACTS[1]), ex)
    assert s.matched == ("f1", "f3")
    steps = score_steps(Trace("during", (FACTS[0], FACTS[1]), ("x",)), ex)
    assert steps["anchor_retrieved"] is True and steps["answer_fact_retrieved"] is True


def test_tolerant_match_prefers_gold_and_includes_the_threshold():
    # the same tokens once articles are dropped, but different items: the tolerant match is tied
    ctx = ("Ann went to a park", "Ann went to the park", "Bob stayed at the old house")
    for gold in ("f0", "f1"):
        s = evidence_score(("Ann went to park",), _ex(ctx, (gold,)), tolerant=True)
        assert s.matched == (gold,) and s.exact
    # token F1 exactly 0.9 (9 of 11 tokens, precision 1) is a match
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven"]
    ex = _ex((" ".join(words), "something else entirely"), ("f0",))
    assert evidence_score((" ".join(words[:9]),), ex, tolerant=True).exact
    assert not evidence_score((" ".join(words[:8]),), ex, tolerant=True).exact
    assert not evidence_score((" ".join(words[:9]),), ex).exact
    # no context at all: nothing to match, not an error
    s = evidence_score(("anything",), _ex(()), tolerant=True)
    assert s.unmatched == 1 and s.matched == ()


def test_evidence_score_as_dict():
    s = EvidenceScore(0.5, 0.25, 1 / 3, False, ("f1", "f0"), 2)
    assert s.as_dict() == {
        "precision": 0.5,
        "recall": 0.25,
        "f1": 1 / 3,
        "exact": False,
        "matched": ["f1", "f0"],
        "unmatched": 2,
    }


def test_retrieved():
    s = evidence_score((FACTS[0], FACTS[1]), _ex(FACTS, ("f0", "f1")))
    assert retrieved(s, ("f0", "f1")) is True and retrieved(s, ("f0",)) is True
    assert retrieved(s, ("f0", "f2")) is False and retrieved(s, ()) is None


def test_score_steps_fields():
    ex = _ex(FACTS, ("f0", "f1"), anchor=("f0",), answer_facts=("f1",))
    paraphrase = ("Ann holds the position of mayor from 1990 to 1995", "Ann works for Acme between 1991 and 1993.")
    steps = score_steps(Trace("During", paraphrase, ("x",)), ex)
    assert steps["label_correct"] is True
    assert steps["evidence"] == evidence_score(paraphrase, ex).as_dict()
    assert steps["evidence"]["matched"] == ["f0"] and not steps["evidence"]["exact"]
    # "between ... and" for "from ... to": token F1 0.8, not a tolerant match either
    assert steps["evidence_tolerant"] == evidence_score(paraphrase, ex, tolerant=True).as_dict()
    assert steps["evidence_tolerant"]["unmatched"] == 1
    tolerant = score_steps(Trace("during", (paraphrase[0], FACTS[1] + " "), ("x",)), ex)
    assert tolerant["evidence_tolerant"]["exact"] and tolerant["evidence"]["exact"]
    near = ("Ann holds the position of mayor from 1990 to 1995 .", "Ann works for Acme from 1991 to 1993 !")
    s = score_steps(Trace("during", near, ("x",)), ex)
    assert (
        not s["evidence"]["exact"]
        and s["evidence_tolerant"]["exact"]
        and s["evidence_tolerant"]["matched"] == ["f0", "f1"]
    )
    assert s["anchor_retrieved"] is True and s["answer_fact_retrieved"] is False and s["trace_correct"] is False
    assert set(s) == {
        "label_correct",
        "evidence",
        "evidence_tolerant",
        "anchor_retrieved",
        "answer_fact_retrieved",
        "trace_correct",
    }


def test_paper_steps_read_the_trace_before_think_close_only():
    ex = _ex(FACTS, ("f0",), label="during")
    # the fact is in the answer, after </think>: the paper's evidence check does not see it
    out = f"<think>The relation is: during. I need facts.</think> <answer>{FACTS[2]}</answer>"
    got = paper_steps(out, ex)
    assert {k: got[k] for k in ("label_correct", "evidence_correct", "trace_correct")} == {
        "label_correct": True,
        "evidence_correct": False,
        "trace_correct": False,
    }
    assert not any(v["evidence_correct"] for v in got["by_rule"].values())
    assert paper_steps("</think> <answer>['x']</answer>", ex) is None  # an empty trace is not evaluated
    assert paper_steps("<answer>['x']</answer>", ex) is None


# -- score/stats.py -------------------------------------------------------------------------------
def _outputs(tables: dict[str, list[list[int]]]) -> tuple[list[int], list[int], list[str]]:
    """Step, answer (0/1 ints, as any caller may pass them) and stratum per output of 2x2 tables."""
    x, y, s = [], [], []
    for stratum, ((a, b), (c, d)) in tables.items():
        for step, answer, count in ((1, 1, a), (1, 0, b), (0, 1, c), (0, 0, d)):
            x += [step] * count
            y += [answer] * count
            s += [stratum] * count
    return x, y, s


def test_json_safe_float():
    assert _f(None) is None and _f(float("nan")) is None and _f(math.inf) is None and _f(-math.inf) is None
    assert _f(np.float64(2.5)) == 2.5 and isinstance(_f(np.float32(1)), float)


def test_table_of_integer_flags():
    assert table_2x2([1, 1, 0, 0, 1], [1, 0, 1, 0, 1]) == [[2, 1], [1, 1]]
    # 0/1 floats (a regression design column) and booleans mixed
    assert table_2x2(np.array([1.0, 1, 0, 0, 1]), [True, False, True, False, True]) == [[2, 1], [1, 1]]
    assert table_2x2([True, True, False], np.array([0.0, 1, 0])) == [[1, 1], [0, 1]]


def test_wilson_values():
    assert wilson(0, 0) == {"p": None, "k": 0, "n": 0, "ci95": [None, None]}
    w = wilson(3, 10)
    assert set(w) == {"p", "k", "n", "ci95"} and (w["p"], w["k"], w["n"]) == (0.3, 3, 10)
    assert w["ci95"] == pytest.approx(list(wilson_formula(3, 10)), rel=1e-12)
    # the closed form is statsmodels' interval, fractional counts (bootstrap fallbacks) included
    from statsmodels.stats.proportion import proportion_confint

    for k, n in [(0, 1), (1, 1), (0, 7), (7, 7), (3, 10), (2.5, 9), (1234, 4001), (1, 100000)]:
        assert wilson(k, n)["ci95"] == pytest.approx(
            list(proportion_confint(k, n, method="wilson")), rel=1e-12, abs=1e-15
        )


def test_chi2_and_fisher_shortcuts_equal_scipy():
    """`chi2_sf` is the special function `scipy.stats.chi2.sf` evaluates; `fisher_p` is
    `scipy.stats.fisher_exact` kept per table."""
    from scipy import stats

    from tracekd.score.stats import chi2_sf, fisher_p

    for x, df in [(0.0, 1), (1e-9, 1), (0.5, 1), (3.84, 1), (34.4, 1), (470.0, 1), (2.0, 3), (11.3, 3), (1e4, 2)]:
        assert chi2_sf(x, df) == float(stats.chi2.sf(x, df))
    for t in [(0, 0, 0, 1), (3, 1, 1, 3), (8, 2, 1, 5), (237, 2, 141, 570), (40, 10, 40, 10), (0, 5, 7, 0)]:
        assert fisher_p(*t) == float(stats.fisher_exact([t[:2], t[2:]]).pvalue)


@pytest.mark.parametrize(
    "table,odds",
    [
        ([[0, 0], [0, 0]], None),
        ([[0, 2], [0, 3]], None),
        ([[3, 0], [2, 4]], math.inf),
        ([[1, 0], [2, 1]], math.inf),
        ([[0, 2], [3, 1]], 0.0),
        ([[0, 1], [1, 1]], 0.0),
    ],
)
def test_association_of_tables_with_a_zero_cell(table, odds):
    a = association(table)
    assert a["odds_ratio"] == odds and a["odds_ratio_ci95"] == [None, None] and a["table"] == table
    assert odds is None or type(a["odds_ratio"]) is float  # 0.0 in results.json, not 0
    degenerate = 0 in (sum(table[0]), sum(table[1]), table[0][0] + table[1][0], table[0][1] + table[1][1])
    if degenerate:
        assert {k: a[k] for k in ("chi2", "chi2_p", "chi2_yates", "chi2_yates_p", "phi")} == dict.fromkeys(
            ("chi2", "chi2_p", "chi2_yates", "chi2_yates_p", "phi")
        )
    assert a["fisher_p"] == (None if a["n"] == 0 else pytest.approx(1.0 if degenerate else a["fisher_p"]))
    assert set(a) == {
        "table",
        "n",
        "chi2",
        "chi2_p",
        "chi2_yates",
        "chi2_yates_p",
        "phi",
        "fisher_p",
        "odds_ratio",
        "odds_ratio_ci95",
        "p_answer_given_step_correct",
        "p_answer_given_step_wrong",
    }


def test_yates_correction_floors_at_zero():
    # |ad - bc| = 3 = n/2: the corrected statistic is 0, not (|ad - bc| - n/2) clipped at another floor
    a = association([[2, 1], [1, 2]])
    assert a["chi2_yates"] == 0.0 and a["chi2_yates_p"] == 1.0
    assert a["chi2"] == pytest.approx(6 * 9 / 81)


def test_design_effect_values():
    # one output per cluster: exactly 1
    assert design_effect(np.array([1.0, 0, 1, 0]), np.array([1.0, 1, 0, 0]), np.zeros(4, int), np.arange(4)) == 1.0
    # two strata (seeds) of the same 4 items with identical outputs: exactly 2 (k copies give k)
    x, y = np.array([1.0, 1, 0, 0] * 2), np.array([1.0, 0, 1, 0] * 2)
    copies = design_effect(x, y, np.repeat([0, 1], 4), np.tile(np.arange(4), 2))
    # u per output: (x - 1/2)(y - 1/2) = +-1/4; independent sum u^2 = 8/16; by item (2u)^2: 4 * 4/16 = 1
    assert copies == pytest.approx(2.0, rel=1e-12)
    # the step constant within each stratum: every u is 0, nothing to correct
    assert design_effect(np.ones(8), y, np.repeat([0, 1], 4), np.tile(np.arange(4), 2)) == 1.0
    # a correlation between seeds of less than copies: the hand-worked 13/9 of test_results_values
    x = np.array([1.0, 1, 0, 0, 1, 0, 1, 1, 0, 0])
    y = np.array([1.0, 1, 1, 0, 1, 0, 1, 0, 1, 0])
    stratum = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    cluster = np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 3])
    assert design_effect(x, y, stratum, cluster) == pytest.approx(13 / 9, rel=1e-12)


def test_stratified_without_informative_strata():
    x, y, s = _outputs({"A": [[2, 1], [0, 0]], "B": [[0, 0], [1, 3]]})
    assert stratified(x, y, s, range(len(x))) == {
        "test": "Cochran-Mantel-Haenszel",
        "strata": 2,
        "informative_strata": 0,
        "left_out": {"A": [[2, 1], [0, 0]], "B": [[0, 0], [1, 3]]},
        "left_out_outputs": 7,
        "outputs": 0,
        "items": 0,
        "margins": None,
        "chi2": None,
        "p": None,
        "chi2_unadjusted": None,
        "design_effect": None,
        "odds_ratio": None,
        "odds_ratio_ci95": [None, None],
        "breslow_day": None,
        "min_expected": None,
        "exact": None,
        "estimable": False,
        "note": "no stratum has both the step and the answer varying",
    }


def test_stratified_at_an_odds_ratio_of_one():
    """Two strata whose Mantel-Haenszel odds ratio is exactly 1 ((4/6 + 1/6) / (1/6 + 4/6)).
    Breslow-Day at OR 1: e = n1 m1 / n = 1.5 in both, v = 1 / (4 / 1.5) = 3/8, each stratum
    (a - e)^2 / v = (1/4) / (3/8) = 2/3: 4/3 with 1 df."""
    x, y, s = _outputs({"A": [[2, 1], [1, 2]], "B": [[1, 2], [2, 1]]})
    st = stratified(x, y, s, range(len(x)))
    assert st["odds_ratio"] == 1.0 and st["chi2"] == pytest.approx(0.0, abs=1e-12) and st["p"] == pytest.approx(1.0)
    assert st["breslow_day"]["chi2"] == pytest.approx(4 / 3, rel=1e-12) and st["breslow_day"]["df"] == 1
    assert st["breslow_day"]["p"] == pytest.approx(math.erfc(math.sqrt(2 / 3)), rel=1e-9)
    lo, hi = st["odds_ratio_ci95"]  # an interval around 1 (symmetric on the log scale)
    assert lo < 1 < hi and lo * hi == pytest.approx(1.0)
    assert st["margins"] == {"step_right": 6, "step_wrong": 6, "answer_right": 6, "answer_wrong": 6}
    assert (st["outputs"], st["items"], st["strata"], st["informative_strata"], st["left_out"]) == (12, 12, 2, 2, {})
    # a third stratum without association ([[1, 1], [1, 1]]: a*d/n = b*c/n = 1/4) keeps OR_MH at 1
    # and adds (1 - 2 * 2 / 4)^2 / v = 0: 4/3 with 2 df
    x, y, s = _outputs({"A": [[2, 1], [1, 2]], "B": [[1, 2], [2, 1]], "C": [[1, 1], [1, 1]]})
    st = stratified(x, y, s, range(len(x)))
    assert st["odds_ratio"] == 1.0 and st["breslow_day"]["df"] == 2
    assert st["breslow_day"]["chi2"] == pytest.approx(4 / 3, rel=1e-12)
    assert st["breslow_day"]["p"] == pytest.approx(math.exp(-2 / 3), rel=1e-9)


@pytest.mark.parametrize(
    "tables,odds,zero",
    [
        ({"A": [[0, 2], [3, 1]], "B": [[0, 1], [2, 2]]}, 0.0, "a*d"),
        ({"A": [[2, 0], [1, 3]], "B": [[1, 0], [2, 2]]}, math.inf, "b*c"),
    ],
)
def test_stratified_without_an_interval(tables, odds, zero):
    """An odds ratio of 0 or infinity (a zero sum of a*d/n or of b*c/n): said in a note, without
    a warning on the console."""
    x, y, s = _outputs(tables)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        st = stratified(x, y, s, range(len(x)))
    assert st["odds_ratio"] == odds and st["odds_ratio_ci95"] == [None, None] and st["breslow_day"] is None
    assert st["note"] == f"every informative stratum has {zero} = 0: the odds ratio is {odds}, without an interval"


def test_stratified_keeps_strata_with_a_margin_of_one():
    x, y, s = _outputs({"A": [[1, 0], [0, 1]], "B": [[3, 1], [1, 3]]})
    st = stratified(x, y, s, range(len(x)))
    assert st["informative_strata"] == 2 and st["outputs"] == 10


def test_bootstrap_of_a_ratio_without_denominator():
    out = ItemBootstrap(["a", "b", "c"]).intervals({"none": ([0, 0, 0], [0, 0, 0]), "all": ([1, 1, 1], [1, 1, 1])})
    assert out["none"] == {"p": None, "ci95": [None, None], "method": None, "items": 0}
    assert out["all"] == {
        "p": 1.0,
        "ci95": pytest.approx(list(wilson_formula(3, 3)), rel=1e-12),
        "method": "wilson",
        "items": 3,
    }
    half = ItemBootstrap(["a", "b", "c", "d"]).intervals({"r": ([1, 1, 0, 0], [1, 1, 1, 1])})["r"]
    assert set(half) == {"p", "ci95", "method", "items"} and (half["p"], half["method"], half["items"]) == (
        0.5,
        "bootstrap",
        4,
    )


def test_bootstrap_of_a_rate_that_applies_to_few_items():
    """A ratio whose denominator is 0 for most items (the anchor step): resamples without those
    items have no value and are left out, without a warning on the console."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ItemBootstrap(["a", "b", "c", "d"]).intervals({"r": ([1, 0, 0, 0], [1, 1, 0, 0])})["r"]
    assert out == {"p": 0.5, "ci95": [0.0, 1.0], "method": "bootstrap", "items": 2}


def test_bootstrap_beyond_the_cached_size(monkeypatch):
    """More items than the cache holds (items x resamples > 8e6): the resamples are drawn in chunks
    without the cache, and they are the same resamples as the cached path's."""
    k = 4001
    items = [f"i{j:05d}" for j in range(k)]
    ratios = {"r": (np.arange(k) % 3 == 0, np.ones(k))}
    uncached = ItemBootstrap(items).intervals(ratios)["r"]
    monkeypatch.setattr(stats, "_CACHED_CELLS", 10**12)
    cached = ItemBootstrap(items).intervals(ratios)["r"]
    assert uncached == cached and uncached["method"] == "bootstrap"
    assert uncached["p"] == pytest.approx(1334 / 4001) and uncached["ci95"][0] < uncached["p"] < uncached["ci95"][1]
    # the same interval by plain indexing: 2,000 resamples of the 4,001 items (seed 0), each
    # resample's rate, the 2.5 and 97.5 percentiles (the implementation draws them in chunks)
    draws = np.random.default_rng(0).integers(0, k, size=(2000, k))
    plain = np.percentile(ratios["r"][0][draws].mean(1), [2.5, 97.5])
    assert uncached["ci95"] == pytest.approx(plain.tolist(), rel=1e-6)


MODEL = "logistic regression (GLM binomial, logit link), item-clustered standard errors"


def _not_fitted(n: int, covariates: list[str], terms: dict, dropped: dict | None = None) -> dict:
    return {
        "model": MODEL,
        "n": n,
        "clusters": 0,
        "covariates": covariates,
        "dropped_levels": dropped or {},
        "terms": terms,
        "estimable": False,
    }


def test_regression_without_variation():
    assert regression([], {"label": []}, {}, []) == _not_fitted(
        0, [], {"label": {"estimable": False, "note": "no outputs"}}
    )
    same = {"estimable": False, "note": "every output has the same answer correctness"}
    assert regression([1, 1, 1], {"label": [1, 0, 1]}, {}, [0, 1, 2]) == _not_fitted(3, [], {"label": same})


def test_regression_terms_that_cannot_be_fitted():
    y = [1, 0, 1, 0, 1, 0]
    got = regression(
        y, {"always": [1] * 6, "never": [0] * 6, "copy": [1, 1, 0, 0, 1, 0], "same": [1, 1, 0, 0, 1, 0]}, {}, range(6)
    )
    assert got["terms"]["always"] == {"estimable": False, "note": "the step is right in every output"}
    assert got["terms"]["never"] == {"estimable": False, "note": "the step is wrong in every output"}
    assert got["terms"]["same"] == {"estimable": False, "note": "collinear with the covariates or the other steps"}
    assert got["terms"]["copy"]["estimable"] and got["estimable"] and got["converged"] is True
    assert set(got["terms"]["copy"]) == {"estimable", "coef", "se", "p", "odds_ratio", "odds_ratio_ci95"}
    assert got["terms"]["copy"]["odds_ratio"] == pytest.approx(math.exp(got["terms"]["copy"]["coef"]))
    assert got["clusters"] == 6 and got["n"] == 6


@pytest.mark.parametrize(
    "x,y,note",
    [
        ([1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 1], "every output with the step right (3) has the answer right"),
        ([1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 0, 1], "every output with the step right (3) has the answer wrong"),
        ([1, 1, 0, 0, 0, 0], [1, 0, 1, 1, 1, 1], "every output with the step wrong (4) has the answer right"),
        ([1, 1, 1, 1, 0, 0], [1, 0, 1, 1, 0, 0], "every output with the step wrong (2) has the answer wrong"),
    ],
)
def test_regression_quasi_separation_notes(x, y, note):
    assert regression(y, {"label": x}, {}, range(6))["terms"]["label"] == {
        "estimable": False,
        "note": "quasi-separation: " + note,
    }


def test_regression_terms_collinear_with_a_covariate():
    # the step is exactly subset B's dummy: nothing left to estimate once the subset is in
    y = [1, 0, 1, 0, 1, 0, 0, 1]
    got = regression(y, {"label": [0, 0, 0, 0, 1, 1, 1, 1]}, {"subset": ["A"] * 4 + ["B"] * 4}, range(8))
    assert got["terms"] == {"label": {"estimable": False, "note": "collinear with the covariates or the other steps"}}
    assert got["estimable"] is False and got["n"] == 8


def test_regression_quasi_separation_by_a_single_output():
    note = "quasi-separation: every output with the step right (1) has the answer right"
    assert regression([1, 1, 0, 1, 0], {"label": [1, 0, 0, 0, 0]}, {}, range(5))["terms"]["label"] == {
        "estimable": False,
        "note": note,
    }


def test_regression_drops_levels_of_every_factor_one_after_the_other():
    # subset A: every answer right (dropped); then seed 2 (outside A): every answer wrong (dropped)
    y = [1, 1, 1, 1, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0]
    x = [1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 0]
    subset = ["A"] * 4 + ["B"] * 10
    seed = ["0", "1", "2", "0", "0", "0", "0", "1", "1", "1", "1", "2", "2", "2"]
    got = regression(y, {"label": x}, {"subset": subset, "seed": seed}, range(14))
    assert got["dropped_levels"] == {"subset": ["A"], "seed": ["2"]} and got["n"] == 7


def test_regression_fit_that_runs_off_to_infinity():
    # within subset A the step right always goes with a right answer, within B the step wrong with a
    # wrong one: no single step is separated, the fit with the subset is (its coefficient passes 15)
    x = [1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1]
    y = [1, 1, 1, 1, 0, 1, 0, 0, 0, 1, 0, 0]
    off = {"estimable": False, "note": "the fit ran off to infinity (separation)"}
    assert regression(y, {"label": x}, {"subset": ["A"] * 6 + ["B"] * 6}, range(12))["terms"] == {"label": off}
    # the majority of three steps: separated only by all three together (statsmodels warns)
    combos = [(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)] * 2
    y = [int(sum(t) >= 2) for t in combos]
    terms = {name: [t[j] for t in combos] for j, name in enumerate(("a", "b", "c"))}
    got = regression(y, terms, {}, range(16))
    assert got["terms"] == {"a": off, "b": off, "c": off} and got["estimable"] is True


# -- traces/conditions.py -------------------------------------------------------------------------
def _story(i, texts, gold=("c0",), label="before", answers=("Paris",)) -> Example:
    return Example(
        f"g/{i}",
        "synthetic-temporal",
        "s",
        f"Question {i}?",
        tuple(ContextItem(f"c{j}", t) for j, t in enumerate(texts)),
        answers,
        label=label,
        evidence=gold,
    )


def test_condition_errors_say_what_is_missing():
    ex = _story(0, ["Ann lives in Rome."])
    with pytest.raises(InputError) as e:
        wrong_label(ex, ("before",), 0)
    assert str(e.value) == "a wrong label needs at least two labels; the label space is ['before']"
    with pytest.raises(InputError) as e:
        make_targets([ex], "magic", 0, ("before", "after"))
    assert str(e.value) == (
        "unknown condition 'magic'; choose one of answer_only, correct, incorrect, wrong_label, wrong_evidence, swapped"
    )
    with pytest.raises(InputError) as e:
        make_targets([ex, _story(1, ["Bob runs."])], "swapped", 0, ("before", "after"))
    assert str(e.value) == "the swapped condition needs examples with at least two different labels"


def test_swapped_with_a_single_partner():
    a, b = _story(0, ["Ann lives in Rome."]), _story(1, ["Bob runs.", "Cy sits."], gold=("c1",), label="after")
    (ta, pa), (tb, pb) = make_targets([a, b], "swapped", 0, ("after", "before"))
    assert pa == {"swapped_with": "g/1", "label": "after", "evidence": ["c1"]} and ta.evidence == ("Cy sits.",)
    assert pb == {"swapped_with": "g/0", "label": "before", "evidence": ["c0"]} and tb.label == "before"


# Seven hand-made examples with three labels; the last two have no distractor of their own (their
# one fact is gold) and borrow one. The targets of each seed are pinned: prepared data (and so
# the models trained on it) do not change from one version to the next for the same seed, and
# each kind of choice (label, evidence, donor, partner) has its own generator.
def _seven() -> list[Example]:
    sizes, labels = (4, 4, 4, 4, 4, 1, 1), ("before", "after", "during", "before", "after", "during", "before")
    return [
        _story(i, [f"Fact {j} of example {i}." for j in range(n)], label=lab, answers=(f"answer{i}",))
        for i, (n, lab) in enumerate(zip(sizes, labels, strict=True))
    ]


PINNED = {
    ("wrong_label", 0): "after before before during during after during",
    ("wrong_label", 1): "after during after after before after during",
    ("wrong_evidence", 0): "c3 c3 c1 c1 c2 c0<g/6 c0<g/2",
    ("wrong_evidence", 1): "c1 c2 c1 c1 c1 c3<g/3 c3<g/4",
    ("swapped", 0): "g/5 g/2 g/6 g/5 g/6 g/6 g/4",
    ("swapped", 1): "g/5 g/3 g/1 g/1 g/0 g/6 g/2",
}


@pytest.mark.parametrize("condition,seed", list(PINNED))
def test_targets_of_a_seed_are_pinned(condition, seed):
    examples = _seven()
    by_id = {ex.id: ex for ex in examples}
    got = []
    for ex, (trace, pert) in zip(
        examples, make_targets(examples, condition, seed, ("after", "before", "during")), strict=True
    ):
        if condition == "wrong_label":
            assert pert == {"label": trace.label} and trace.evidence == (ex.context[0].text,)
            got.append(trace.label)
        elif condition == "wrong_evidence":
            source = by_id[pert.get("evidence_from", ex.id)]
            assert set(pert) <= {"evidence", "evidence_from"} and trace.label == ex.label
            assert trace.evidence == tuple(source.texts(pert["evidence"]))
            got.append(" ".join(pert["evidence"]) + (f"<{source.id}" if source is not ex else ""))
        else:
            other = by_id[pert["swapped_with"]]
            assert pert == {"swapped_with": other.id, "label": other.label, "evidence": list(other.evidence)}
            got.append(other.id)
    assert " ".join(got) == PINNED[condition, seed]


def test_donor_search_goes_forward_in_id_order():
    """Donors a..d in id order, b and c without a distractor for the example (b's fact states its
    answer, c's repeats its gold fact): from a seeded start, the first donor at or after it that
    has one. Starting at a gives a, at b, c or d gives d: d three times out of four."""
    tiny = _story("t", ["Ann lives in Rome."])
    donors = [
        _story("a", ["Bob went home.", "Cy ate."], gold=()),
        _story("b", ["Ann moved to Paris."], gold=()),
        _story("c", ["Ann lives in Rome", "Paris is big."], gold=()),
        _story("d", ["Dan slept.", "Eve ran."], gold=()),
    ]
    sources = Counter(wrong_evidence(tiny, seed, donors).source for seed in range(16))
    assert sources == {"g/d": 13, "g/a": 3}


def test_distractors_of_a_donor():
    """A donor's items are judged against the example: not the text of the example's gold item,
    not stating its answer, each text once; the donor's own gold items may serve (the example's
    gold ids mean nothing in the donor's context)."""
    ex = _story(0, ["Ann lives in Rome.", "Ann is a baker."], gold=("c0", "c1"), answers=("Paris",))
    donor = _story(1, ["Ann lives in Rome.", "Bob went to Paris.", "Cy ate.", "Cy ate", "Dan slept."], gold=("c4",))
    assert [c.id for c in distractors(ex, donor)] == ["c2", "c4"]
    wrong = wrong_evidence(ex.replace(context=ex.context[:1], evidence=("c0",) * 3), 0, [donor])
    assert (wrong.source, [c.id for c in wrong.items]) == ("g/1", ["c2", "c4"])
    # in the example's own context: gold, repeated and answer-stating items are left out
    own = _story(2, ["Ann lives in Rome.", "Ann lives in Rome", "Dan slept.", "dan slept", "Paris!"], gold=("c0",))
    assert [c.id for c in distractors(own)] == ["c2"]


def test_perturbation_counts():
    perts = [
        None,
        {"label": "after"},
        {"evidence": ["c1"]},
        {"evidence": ["c3"]},
        {"label": "after", "evidence": []},
        {"evidence": ["c2"], "evidence_from": "g/3"},
        {"evidence": [], "evidence_from": "g/4"},
        {"swapped_with": "g/5", "label": "after", "evidence": []},
    ]
    assert perturbation_counts(perts) == {"evidence_from_other_example": 2, "evidence_empty": 2}
    assert perturbation_counts([]) == {"evidence_from_other_example": 0, "evidence_empty": 0}


# -- score/answers.py -----------------------------------------------------------------------------
def test_set_scores_every_field():
    assert set_scores(None, ("x",)) == {"correct": False, "em": 0.0, "p": 0.0, "r": 0.0, "f1": 0.0, "token_f1": 0.0}
    assert set_scores(None, ()) == {"correct": False, "em": 0.0, "p": 0.0, "r": 0.0, "f1": 0.0, "token_f1": 0.0}
    # answers that normalise to nothing ("the", ".") are dropped on both sides
    assert set_scores(("Paris", "."), ("paris", "the")) == {
        "correct": True,
        "em": 1.0,
        "p": 1.0,
        "r": 1.0,
        "f1": 1.0,
        "token_f1": 1.0,
    }
    assert set_scores(("x",), ("the",))["r"] == 0.0  # no gold answer left: recall 0, not 1
    # p = 1/2, r = 1: F1 = 2/3; tokens: 1 common of 2 predicted and 1 gold
    s = set_scores(("a1", "b2"), ("a1",))
    assert s == {
        "correct": False,
        "em": 0.0,
        "p": 0.5,
        "r": 1.0,
        "f1": pytest.approx(2 / 3),
        "token_f1": pytest.approx(2 / 3),
    }


def test_babi_scores_every_field():
    assert babi_scores(("garden.",), ("Garden",), 1) == {"correct": True, "em": 1.0}
    assert babi_scores(("garden",), ("kitchen",), 1) == {"correct": False, "em": 0.0}
    assert babi_scores(None, (), 1) == {"correct": False, "em": 0.0}  # nothing stated is never right
    assert babi_scores(("Graß",), ("grass",), 1)["correct"] is False  # case folded by lower(): "ß" is not "ss"


def test_msmarco_scores_every_field():
    zero = {"correct": False, "em": 0.0, "f1": 0.0, "rouge_l": 0.0, "bleu_1": 0.0}
    assert msmarco_scores(None, ("Paris",)) == {**zero, "no_answer": False}
    assert msmarco_scores(("  ",), ("Paris",)) == {**zero, "no_answer": False}
    # one side says "No Answer Present.": scored as that case, wrong
    assert msmarco_scores(("Paris",), ("No Answer Present.",)) == {**zero, "no_answer": True}
    assert msmarco_scores(("No Answer Present.",), ("Paris",)) == {**zero, "no_answer": True}
    assert msmarco_scores(("no answer present",), ("No Answer Present.",)) == {
        "correct": True,
        "em": 1.0,
        "f1": 1.0,
        "rouge_l": 1.0,
        "bleu_1": 1.0,
        "no_answer": True,
    }
    # the stated answers joined match a gold answer; alone they do not
    s = msmarco_scores(("New", "York"), ("New York",))
    assert s["correct"] and s["em"] == 1.0 and s["no_answer"] is False
    # punctuation only: no tokens, BLEU 0
    assert msmarco_scores(("!!!",), ("yes",)) == {**zero, "no_answer": False}
    # BLEU-1 = brevity penalty (1: equal lengths) x unigram precision 2/3
    s = msmarco_scores(("x1 y2 q9",), ("x1 y2 z3",))
    assert s == {
        "correct": False,
        "em": 0.0,
        "f1": pytest.approx(2 / 3),
        "rouge_l": pytest.approx(2 / 3),
        "bleu_1": pytest.approx(2 / 3),
        "no_answer": False,
    }


def _upstream(prediction: str, gold: tuple[str, ...], question: str = "Which one?", facts=()) -> bool:
    return cotempqa_upstream(prediction, gold, question, list(facts), "S1_R1_O2")["correct"]


def test_upstream_answer_span_branches():
    # the text before "answer the question based on"
    assert _upstream("the capital paris answer the question based on the facts", ("Paris",))
    # the text after "answer:" (without spaces around "answer")
    assert _upstream("x answer: the paris", ("Paris",))
    assert not _upstream("x answer: rome", ("Paris",))
    # "think" is deleted everywhere before candidates are searched: "thinkyork" reads "york"
    assert _upstream("<answer>new thinkyork</answer>", ("New York",))
    assert not _upstream("<answer>think tank</answer>", ("think tank",))
    # lower case, not upper case, as the original: "ß" and "ss" differ
    assert not _upstream("<answer>Strasse</answer>", ("Straße",))
    assert _upstream("<answer>Straße</answer>", ("straße",))


def test_upstream_removes_found_candidates_without_a_trace():
    """A found candidate is deleted from the prediction (replaced by nothing), so a shorter one can
    appear in what is left: "roparisme" less "paris" is "rome"."""
    assert cotempqa_upstream("roparisme", ("Paris", "Rome"), "Which one?", [], "S1_R1_O2")["correct"]
    # the first candidate also in the question is dropped, and deleted in the same way
    assert cotempqa_upstream("roparisme", ("Rome", "Paris"), "Was it Paris?", [], "S1_R1_O2")["p"] == 1.0


# -- traces/parse.py ------------------------------------------------------------------------------
def parse(text) -> Trace:
    """The parser with the category sentence CoTempQA, bAbI and MS MARCO share."""
    return parse_trace(text, LABEL_SENTENCE_CATEGORY)


def _label(value: str) -> str | None:
    return parse(f"<think>The category of the question asked is: {value}</think>").label


def test_label_value_keeps_its_own_letters():
    assert _label("during...") == "during"  # trailing full stops go, leading ones would stay
    assert _label("XMAX.") == "XMAX" and _label("'XMAX'.") == "XMAX" and _label('"X".') == "X"
    assert _label("'' .") is None


def test_broken_lists():
    """Lists that are not Python literals: split on quote-comma-quote, the outer quotes and
    brackets removed, escapes undone, a truncated last item dropped."""
    assert parse_list("[Paris, Lyon]") == ("Paris, Lyon",)  # no quotes: one item, every letter kept
    assert parse_list("['People's Party' ]") == ("People's Party",)
    assert parse_list("['People's Party']") == ("People's Party",)
    assert parse_list('["People"s Party", "Bob"]') == ('People"s Party', "Bob")
    assert parse_list("['Bob's', 'Ann's']") == ("Bob's", "Ann's")
    assert parse_list(r"""['Ann\'s', 'say \"hi\"', 'back\\slash', 'Bob's']""") == (
        "Ann's",
        'say "hi"',
        "back\\slash",
        "Bob's",
    )
    assert parse_list("['Bob's', 'Ly") == ("Bob's",)  # truncated: the unterminated item is dropped
    assert parse_list("['Bob's', ''Ann']") == ("Bob's", "'Ann")  # only the list's own quotes go


def test_tag_line_values_that_are_not_list_literals():
    """A tag-line value is read as a list only when it is exactly a list literal of strings;
    anything else is kept as written."""
    assert parse("answer: ['a', 'b']").answers == ("a", "b")
    assert parse("answer: [1, 2]").answers == ("[1, 2]",)
    assert parse("answer: [oops]").answers == ("[oops]",)
    assert parse("answer: ['a'] # note").answers == ("['a'] # note",)
    assert parse("answer: 'a']").answers == ("'a']",)


def test_bracket_lists_read_as_literals_up_to_the_right_bracket():
    """The longest prefix that is a list literal wins (non-strings written with repr); only when
    none is does the broken-list reading apply, up to the last `]`."""
    assert parse_list("[1, 'x'].") == ("1", "x")
    assert parse_list("[None, 'x'] (note)") == ("None", "x")
    assert parse_list("['a', 'b'] and [c]") == ("a", "b")
    assert parse_list("['a]', 1] x") == ("a]", "1")
    assert parse_list("['a']]") == ("a",)
    assert parse_list("['a]b', 'c's']") == ("a]b", "c's")
    assert parse_list("['Bob's', 'Ann's'] (note)") == ("Bob's", "Ann's")
    assert parse_list("['Bob's', 'Ann's'].") == ("Bob's", "Ann's")


CATEGORY_SENTENCE = "The category of the question asked is: "


def test_parse_where_the_steps_are():
    assert parse(None) == Trace(None, None, None) and parse(12) == Trace(None, None, None)
    # a closing tag glued to a tag-line value is dropped
    assert parse("answer: x</answer>").answers == ("x",) and parse("answer: </think>").answers == ("</think>",)
    # the label sentence without <think>, and after it
    assert parse(CATEGORY_SENTENCE + "counting.\nAnswer: x").label == "counting"
    assert parse("<think>nothing here</think> " + CATEGORY_SENTENCE + "counting.").label == "counting"
    # inside <think> first, even when another label sentence comes before it
    assert parse(CATEGORY_SENTENCE + "a. <think>" + CATEGORY_SENTENCE + "b.</think>").label == "b"
    # a label sentence alone is no answer
    assert parse(CATEGORY_SENTENCE + "counting.") == Trace("counting", None, None)
    # several tag lines: each line an item, even when the first looks like a list
    assert parse("evidence: ['a']\nevidence: b").evidence == ("['a']", "b")
    assert parse("answer: ['a']\nanswer: b").answers == ("['a']", "b")
    # the answer is what follows the first </think>, also at the very start
    assert parse("<think>x</think> y </think> z").answers == ("y </think> z",)
    assert parse("</think>Paris<think>").answers == ("Paris<think>",)
