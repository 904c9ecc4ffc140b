"""Precise unit tests of the scoring core (score/stats, steps, answers; traces/parse, conditions),
written to kill the mutants `make mutation` showed surviving (docs/testing.md). Each test pins a
value that a one-token change to the code would alter."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from recompute import wilson as wilson_formula
from tracekd.data import ContextItem, Example
from tracekd.score import stats
from tracekd.score.answers import cotempqa_upstream, upstream_totals
from tracekd.score.stats import (
    ItemBootstrap,
    _f,
    association,
    design_effect,
    loss_trend,
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
from tracekd.traces.render import Trace


def test_upstream_port_reproduces_every_published_file(reference_outputs):
    """The CoTempQA port record by record on the paper's 12 published files: the five totals of
    each equal the published evaluation_results exactly (the fast route: only the scorer)."""
    files = sorted((reference_outputs / "evaluation_outputs").glob("*/*.json"))
    assert len(files) == 12
    for path in files:
        with path.open(encoding="utf-8") as f:
            recs = [json.loads(line) for line in f]
        scores = [cotempqa_upstream(r["prediction"], r["gold"], r["question"], r["facts"], r["triple_element"]) for r in recs]
        published = json.loads((reference_outputs / "evaluation_results" / path.parent.name / path.name).read_text())
        assert upstream_totals(scores) == published, path.name


# -- score/steps.py -------------------------------------------------------------------------------
def _ex(context: tuple[str, ...], evidence=(), anchor=(), answer_facts=(), label="during", answers=("x",)) -> Example:
    return Example("core/1", "cotempqa", "during", "While Ann was mayor, what did Ann do?",
                   tuple(ContextItem(f"f{i}", t) for i, t in enumerate(context)), answers,
                   label=label, evidence=evidence, anchor=anchor, answer_facts=answer_facts)


FACTS = ("Ann holds the position of mayor from 1990 to 1995.", "Ann works for Acme from 1991 to 1993.",
         "Ann attended Oxford in 1975.", "Ann plays for Lyon in 1980.")


def test_evidence_scores_without_a_list():
    assert evidence_score(None, _ex(FACTS, ("f0",))) == EvidenceScore(0.0, 0.0, 0.0, False, (), 0)


@pytest.mark.parametrize("cited,p,r,f1,exact", [
    ((FACTS[0], FACTS[1]), 1.0, 1.0, 1.0, True),
    ((FACTS[0],), 1.0, 0.5, 2 / 3, False),  # p != r: F1 = 2pr / (p + r)
    ((FACTS[0], FACTS[2]), 0.5, 0.5, 0.5, False),  # p == r
    ((FACTS[0], FACTS[1], FACTS[2]), 2 / 3, 1.0, 0.8, False),
    ((FACTS[2], FACTS[3]), 0.0, 0.0, 0.0, False),  # p + r == 0
    ((), 0.0, 0.0, 0.0, False),  # nothing cited, gold not empty
])
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
    assert s.as_dict() == {"precision": 0.5, "recall": 0.25, "f1": 1 / 3, "exact": False, "matched": ["f1", "f0"],
                           "unmatched": 2}


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
    assert not s["evidence"]["exact"] and s["evidence_tolerant"]["exact"] and s["evidence_tolerant"]["matched"] == ["f0", "f1"]
    assert s["anchor_retrieved"] is True and s["answer_fact_retrieved"] is False and s["trace_correct"] is False
    assert set(s) == {"label_correct", "evidence", "evidence_tolerant", "anchor_retrieved", "answer_fact_retrieved",
                      "trace_correct"}


def test_paper_steps_read_the_trace_before_think_close_only():
    ex = _ex(FACTS, ("f0",), label="during")
    # the fact is in the answer, after </think>: the paper's evidence check does not see it
    out = f"<think>The relation is: during. I need facts.</think> <answer>{FACTS[2]}</answer>"
    assert paper_steps(out, ex) == {"label_correct": True, "evidence_correct": False, "trace_correct": False}
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


def test_wilson_values():
    assert wilson(0, 0) == {"p": None, "k": 0, "n": 0, "ci95": [None, None]}
    w = wilson(3, 10)
    assert set(w) == {"p", "k", "n", "ci95"} and (w["p"], w["k"], w["n"]) == (0.3, 3, 10)
    assert w["ci95"] == pytest.approx(list(wilson_formula(3, 10)), rel=1e-12)


@pytest.mark.parametrize("table,odds", [
    ([[0, 0], [0, 0]], None), ([[0, 2], [0, 3]], None), ([[3, 0], [2, 4]], math.inf),
    ([[1, 0], [2, 1]], math.inf), ([[0, 2], [3, 1]], 0.0), ([[0, 1], [1, 1]], 0.0),
])
def test_association_of_tables_with_a_zero_cell(table, odds):
    a = association(table)
    assert a["odds_ratio"] == odds and a["odds_ratio_ci95"] == [None, None] and a["table"] == table
    degenerate = 0 in (sum(table[0]), sum(table[1]), table[0][0] + table[1][0], table[0][1] + table[1][1])
    if degenerate:
        assert {k: a[k] for k in ("chi2", "chi2_p", "chi2_yates", "chi2_yates_p", "phi")} == dict.fromkeys(
            ("chi2", "chi2_p", "chi2_yates", "chi2_yates_p", "phi"))
    assert a["fisher_p"] == (None if a["n"] == 0 else pytest.approx(1.0 if degenerate else a["fisher_p"]))
    assert set(a) == {"table", "n", "chi2", "chi2_p", "chi2_yates", "chi2_yates_p", "phi", "fisher_p", "odds_ratio",
                      "odds_ratio_ci95", "p_answer_given_step_correct", "p_answer_given_step_wrong"}


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
        "test": "Cochran-Mantel-Haenszel", "strata": 2, "informative_strata": 0,
        "left_out": {"A": [[2, 1], [0, 0]], "B": [[0, 0], [1, 3]]}, "left_out_outputs": 7, "outputs": 0,
        "items": 0, "margins": None, "chi2": None, "p": None, "chi2_unadjusted": None, "design_effect": None,
        "odds_ratio": None, "odds_ratio_ci95": [None, None], "breslow_day": None, "estimable": False,
        "note": "no stratum has both the step and the answer varying"}


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


@pytest.mark.parametrize("tables,odds,zero", [
    ({"A": [[0, 2], [3, 1]], "B": [[0, 1], [2, 2]]}, 0.0, "a*d"),
    ({"A": [[2, 0], [1, 3]], "B": [[1, 0], [2, 2]]}, math.inf, "b*c"),
])
def test_stratified_without_an_interval(tables, odds, zero):
    x, y, s = _outputs(tables)
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
    assert out["all"] == {"p": 1.0, "ci95": pytest.approx(list(wilson_formula(3, 3)), rel=1e-12), "method": "wilson", "items": 3}
    half = ItemBootstrap(["a", "b", "c", "d"]).intervals({"r": ([1, 1, 0, 0], [1, 1, 1, 1])})["r"]
    assert set(half) == {"p", "ci95", "method", "items"} and (half["p"], half["method"], half["items"]) == (0.5, "bootstrap", 4)


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


RULE = ("least-squares slope of the logged training loss over the last 25% of steps; "
        "falling when the fitted drop across them exceeds 5% of their mean loss")


def test_loss_trend_values():
    assert loss_trend([]) == {"falling": None, "points": 0, "relative_drop": None, "rule": RULE}
    assert loss_trend([{"step": 10, "loss": 1.0}, {"step": 100, "loss": 0.5}, {"epoch": 1}]) == {
        "falling": None, "points": 1, "relative_drop": None, "rule": RULE}
    # steps 75..100 are the last quarter of 100 (75 included): 3 points on a line falling 0.01 per
    # step, a drop of 0.25 over the 25 steps, relative to their mean loss (0.85 + 0.70 + 0.60) / 3
    log = [{"step": s, "loss": v} for s, v in ((50, 2.0), (74, 2.0), (75, 0.85), (90, 0.7), (100, 0.6))]
    t = loss_trend(log)
    assert t["points"] == 3 and t["falling"] is True and t["rule"] == RULE
    assert t["relative_drop"] == pytest.approx(0.25 / (2.15 / 3), rel=1e-9)
    # small losses (mean below 1) still have a relative drop
    small = loss_trend([{"step": s, "loss": 0.5 - 0.01 * (s - 80)} for s in (80, 90, 100)])
    assert small["falling"] is True and small["relative_drop"] == pytest.approx(0.2 / 0.4, rel=1e-9)
    # a loss of zero: no relative drop, not falling
    assert loss_trend([{"step": s, "loss": 0.0} for s in (80, 90, 100)]) == {
        "falling": False, "points": 3, "relative_drop": 0.0, "rule": RULE}


MODEL = "logistic regression (GLM binomial, logit link), item-clustered standard errors"


def _not_fitted(n: int, covariates: list[str], terms: dict, dropped: dict | None = None) -> dict:
    return {"model": MODEL, "n": n, "clusters": 0, "covariates": covariates, "dropped_levels": dropped or {},
            "terms": terms, "estimable": False}


def test_regression_without_variation():
    assert regression([], {"label": []}, {}, []) == _not_fitted(0, [], {"label": {"estimable": False, "note": "no outputs"}})
    same = {"estimable": False, "note": "every output has the same answer correctness"}
    assert regression([1, 1, 1], {"label": [1, 0, 1]}, {}, [0, 1, 2]) == _not_fitted(3, [], {"label": same})


def test_regression_terms_that_cannot_be_fitted():
    y = [1, 0, 1, 0, 1, 0]
    got = regression(y, {"always": [1] * 6, "never": [0] * 6, "copy": [1, 1, 0, 0, 1, 0], "same": [1, 1, 0, 0, 1, 0]},
                     {}, range(6))
    assert got["terms"]["always"] == {"estimable": False, "note": "the step is right in every output"}
    assert got["terms"]["never"] == {"estimable": False, "note": "the step is wrong in every output"}
    assert got["terms"]["same"] == {"estimable": False, "note": "collinear with the covariates or the other steps"}
    assert got["terms"]["copy"]["estimable"] and got["estimable"] and got["converged"] is True
    assert set(got["terms"]["copy"]) == {"estimable", "coef", "se", "p", "odds_ratio", "odds_ratio_ci95"}
    assert got["terms"]["copy"]["odds_ratio"] == pytest.approx(math.exp(got["terms"]["copy"]["coef"]))
    assert got["clusters"] == 6 and got["n"] == 6


@pytest.mark.parametrize("x,y,note", [
    ([1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 1], "every output with the step right (3) has the answer right"),
    ([1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 0, 1], "every output with the step right (3) has the answer wrong"),
    ([1, 1, 0, 0, 0, 0], [1, 0, 1, 1, 1, 1], "every output with the step wrong (4) has the answer right"),
    ([1, 1, 1, 1, 0, 0], [1, 0, 1, 1, 0, 0], "every output with the step wrong (2) has the answer wrong"),
])
def test_regression_quasi_separation_notes(x, y, note):
    assert regression(y, {"label": x}, {}, range(6))["terms"]["label"] == {"estimable": False, "note": "quasi-separation: " + note}


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
