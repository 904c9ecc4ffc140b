"""results.json and report.md of a tiny run whose every number is worked out by hand (tests/values_run.py).

The run: one dataset, one model, the untrained baseline (seed 0) and `correct` (seeds 0 and 1),
6 test items in 2 subsets of unequal size (A: a1-a4, B: b1-b2). Each cell's
scores.examples.jsonl is written here from the table below, `results_from_run` aggregates the
cells and `write_report` renders them, as `tracekd run` does after the last cell. Every expected
value is a fraction derived in the comments from the table (no tracekd code computes it); the
few that are not closed forms (the percentile bootstrap, the Breslow-Day expected cell) are
recomputed here by another route: a plain resampling of items, a bisection.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction as F
from pathlib import Path

import numpy as np
import pytest

from conftest import per_test_under_mutmut
from recompute import Z, md_tables, pct, wilson
from tracekd.experiment.config import load_config
from tracekd.experiment.runner import plan
from tracekd.report.build import write_report
from tracekd.report.results import results_from_run
from values_run import BASELINE, CORRECT, ITEMS, output_row

CONFIG = """
name: values
datasets: [{name: synthetic-babi, size: 20}]
models: [tiny-random]
conditions: [baseline, correct]
seeds: [0, 1]
"""


@pytest.fixture(scope=per_test_under_mutmut)
def run(tmp_path_factory) -> Path:
    """The run folder with results.json (report.md: the `md` fixture)."""
    root = tmp_path_factory.mktemp("values")
    (root / "values.yaml").write_text(CONFIG)
    cfg = load_config(root / "values.yaml")
    cells = plan(cfg)
    assert [(c.condition, c.seed) for c in cells] == [("baseline", 0), ("correct", 0), ("correct", 1)]
    for c in cells:
        table = BASELINE if c.condition == "baseline" else CORRECT[c.seed]
        path = c.folder(root / "run") / "scores.examples.jsonl"
        path.parent.mkdir(parents=True)
        path.write_text("".join(json.dumps(output_row(i, c.seed, table[i], c.condition)) + "\n" for i in ITEMS))
    results_from_run(cfg, root / "run", cells)
    return root / "run"


@pytest.fixture(scope=per_test_under_mutmut)
def groups(run) -> dict[str, dict]:
    res = json.loads((run / "results.json").read_text())
    return {g["condition"]: g for g in res["groups"]}


@pytest.fixture(scope=per_test_under_mutmut)
def md(run) -> dict[str, list[dict[str, str]]]:
    write_report(json.loads((run / "results.json").read_text()), run)
    return md_tables((run / "report.md").read_text())


# -- independent helpers: textbook formulas written out here --------------------------------------
def chi2_sf(x: float, df: int) -> float:
    """The chi-square survival function for 1 df (erfc) and 2 df (exp)."""
    return math.erfc(math.sqrt(x / 2)) if df == 1 else math.exp(-x / 2)


def fisher_two_sided(table) -> float:
    (a, b), (c, d) = table
    r1, c1, n = a + b, a + c, a + b + c + d
    prob = {x: math.comb(c1, x) * math.comb(n - c1, r1 - x) for x in range(max(0, r1 + c1 - n), min(r1, c1) + 1)}
    return sum(v for v in prob.values() if v <= prob[a] * (1 + 1e-7)) / math.comb(n, r1)


def item_bootstrap(num: dict[str, float], den: dict[str, float]) -> list[float]:
    """docs/scoring.md: 2,000 resamples of the test items with replacement, seed 0, each item
    bringing all its outputs; the rate of a resample is sum(numerators) / sum(denominators), the
    interval the 2.5 and 97.5 percentiles. Written as plain indexing of items in id order (the
    implementation multiplies count matrices)."""
    keys = sorted(num)
    n, d = np.array([num[k] for k in keys]), np.array([den[k] for k in keys])
    draws = np.random.default_rng(0).integers(0, len(keys), size=(2000, len(keys)))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = n[draws].sum(1) / d[draws].sum(1)
    return [float(v) for v in np.percentile(ratios[np.isfinite(ratios)], [2.5, 97.5])]


def breslow_day(strata: list, odds: float) -> float:
    """sum_k (a_k - e_k)^2 / v_k, e_k the cell a of the table with stratum k's margins and odds
    ratio `odds` (found by bisection), v_k = 1 / (1/e + 1/(n1-e) + 1/(m1-e) + 1/(n2-m1+e))."""
    total = 0.0
    for (a, b), (c, d) in strata:
        n1, n2, m1 = a + b, c + d, a + c
        lo, hi = max(0, m1 - n2), min(n1, m1)
        for _ in range(200):
            e = (lo + hi) / 2
            if e * (n2 - m1 + e) < odds * (n1 - e) * (m1 - e):
                lo = e
            else:
                hi = e
        v = 1 / (1 / e + 1 / (n1 - e) + 1 / (m1 - e) + 1 / (n2 - m1 + e))
        total += (a - e) ** 2 / v
    return total


# -- rates --------------------------------------------------------------------------------------
def test_group_counts(groups):
    g = groups["correct"]
    assert g["seeds"] == [0, 1] and g["n"] == 6 and g["outputs"] == 12
    assert g["status"] == {"ok": 11, "empty": 0, "unparsable": 1, "missing": 0}
    assert groups["baseline"]["seeds"] == [0] and groups["baseline"]["outputs"] == 6
    assert g["examples"] == [f"cells/synthetic-babi/tiny-random/correct/seed-{s}/scores.examples.jsonl" for s in (0, 1)]


# pooled over both seeds (12 outputs), and per seed (6 each); the anchor applies to the 4 A items and b1
RATES = {
    # answer right: seed 0 a1 a2 a3 b1 (4/6), seed 1 a1 a3 b2 (3/6)
    "answer_accuracy": (F(7, 12), [F(4, 6), F(3, 6)]),
    # label right: seed 0 a1 a2 b1 (3/6), seed 1 a1 a2 b1 b2 (4/6)
    "label_accuracy": (F(7, 12), [F(3, 6), F(4, 6)]),
    # exact evidence: seed 0 a1 a3 b1, seed 1 a1 a2 b2
    "evidence_accuracy": (F(6, 12), [F(3, 6), F(3, 6)]),
    # trace = label and evidence: seed 0 a1 b1, seed 1 a1 a2 b2
    "trace_accuracy": (F(5, 12), [F(2, 6), F(3, 6)]),
    # anchor, over the outputs of A and b1: seed 0 a1 a2 a3 b1 (4/5), seed 1 a1 a3 b1 (3/5)
    "anchor_accuracy": (F(7, 10), [F(4, 5), F(3, 5)]),
    # answer-bearing fact: seed 0 a1 a3 b1 (3/6), seed 1 a1 a2 b1 b2 (4/6)
    "answer_fact_accuracy": (F(7, 12), [F(3, 6), F(4, 6)]),
    # evidence F1: seed 0 (1 + .5 + 1 + 0 + 1 + 0) / 6 = 3.5/6, seed 1 (1 + 1 + .5 + 0 + .5 + 1) / 6 = 4/6
    "evidence_f1": (F(15, 24), [F(7, 12), F(4, 6)]),
    # an answer found: all but seed 0's b2
    "parse_rate": (F(11, 12), [F(5, 6), F(6, 6)]),
}


@pytest.mark.parametrize("name", list(RATES))
def test_rates_pooled_and_per_seed(groups, name):
    pooled, per_seed = RATES[name]
    r = groups["correct"]["rates"][name]
    assert r["mean"] == pytest.approx(float(pooled), abs=1e-12)
    assert r["per_seed"] == pytest.approx([float(x) for x in per_seed], abs=1e-12)
    # the sd of two values is |x0 - x1| / sqrt(2) (n - 1 in the denominator)
    assert r["sd"] == pytest.approx(float(abs(per_seed[0] - per_seed[1])) / math.sqrt(2), abs=1e-12)


def test_rate_intervals(groups):
    r = groups["correct"]["rates"]
    # answers per item over both seeds: a1 2, a2 1, a3 2, a4 0, b1 1, b2 1 (of 2 outputs each)
    right = {"a1": 2, "a2": 1, "a3": 2, "a4": 0, "b1": 1, "b2": 1}
    assert r["answer_accuracy"]["method"] == "bootstrap"
    assert r["answer_accuracy"]["ci95"] == pytest.approx(item_bootstrap(right, dict.fromkeys(right, 2)), rel=1e-6)
    # the anchor applies to A and b1 only: b2 has denominator 0
    anchor = {"a1": 2, "a2": 1, "a3": 2, "a4": 0, "b1": 2, "b2": 0}
    den = {i: 2 * (i != "b2") for i in ITEMS}
    assert r["anchor_accuracy"]["ci95"] == pytest.approx(item_bootstrap(anchor, den), rel=1e-6)
    base = groups["baseline"]["rates"]
    # the baseline's label is never right and every answer parses: no resample differs, so the
    # interval is Wilson's with the 6 items as n: [0, z^2 / (6 + z^2)] and [6 / (6 + z^2), 1]
    assert base["label_accuracy"]["method"] == base["parse_rate"]["method"] == "wilson"
    assert base["label_accuracy"]["ci95"] == pytest.approx([0, Z * Z / (6 + Z * Z)], abs=1e-9)
    assert base["parse_rate"]["ci95"] == pytest.approx([6 / (6 + Z * Z), 1], abs=1e-9)
    # one seed: the mean is that seed's value, no sd
    assert base["answer_accuracy"]["mean"] == pytest.approx(2 / 6) and base["answer_accuracy"]["sd"] is None
    assert base["answer_accuracy"]["per_seed"] == pytest.approx([2 / 6])


# per subset, pooled over seeds: A has 8 outputs, B 4
BY_SUBSET = {
    "correct": {
        # A: answers seed 0 a1 a2 a3, seed 1 a1 a3 (5/8); B: seed 0 b1, seed 1 b2 (2/4)
        "A": {
            "n": 8,
            "answer_accuracy": F(5, 8),
            "label_accuracy": F(4, 8),
            "evidence_accuracy": F(4, 8),
            "anchor_accuracy": F(5, 8),
            "trace_accuracy": F(3, 8),
        },
        "B": {
            "n": 4,
            "answer_accuracy": F(2, 4),
            "label_accuracy": F(3, 4),
            "evidence_accuracy": F(2, 4),
            # the anchor applies to b1 only (2 of B's 4 outputs), retrieved in both seeds
            "anchor_accuracy": F(2, 2),
            "trace_accuracy": F(2, 4),
        },
    },
    "baseline": {
        "A": {"n": 4, "answer_accuracy": F(1, 4), "anchor_accuracy": F(0, 4)},
        "B": {"n": 2, "answer_accuracy": F(1, 2), "anchor_accuracy": None},
    },
}


@pytest.mark.parametrize("condition", list(BY_SUBSET))
def test_per_subset_rates(groups, condition):
    """The per-subset rate's denominator is that subset's outputs (of all seeds), not all outputs,
    not the number of seeds or subsets."""
    got = groups[condition]["by_subset"]
    assert set(got) == {"A", "B"}
    for subset, expected in BY_SUBSET[condition].items():
        for key, value in expected.items():
            assert got[subset][key] == (None if value is None else pytest.approx(float(value), abs=1e-12)), (
                subset,
                key,
            )


# -- association of the label step --------------------------------------------------------------
# (label, answer) tables [[a, b], [c, d]] per subset x seed, from CORRECT:
#   A|0: a1 a2 (a), a3 (c), a4 (d)          -> [[2, 0], [1, 1]]
#   B|0: b1 (a), b2 (d)                     -> [[1, 0], [0, 1]]
#   A|1: a1 (a), a2 (b), a3 (c), a4 (d)     -> [[1, 1], [1, 1]]
#   B|1: b1 (b), b2 (a)                     -> [[1, 1], [0, 0]]  the label always right: left out
POOLED = [[5, 2], [2, 3]]


def test_label_tables(groups):
    a = groups["correct"]["association"]["label"]
    assert a["table"] == POOLED
    assert {s: b["table"] for s, b in a["by_subset"].items()} == {"A": [[3, 1], [2, 2]], "B": [[2, 1], [0, 1]]}
    assert {s: b["table"] for s, b in a["by_seed"].items()} == {"0": [[3, 0], [1, 2]], "1": [[2, 2], [1, 1]]}
    # the other steps' pooled tables (step, answer)
    tables = {k: v["table"] for k, v in groups["correct"]["association"].items()}
    assert tables == {
        "label": POOLED,
        "evidence": [[5, 1], [2, 4]],
        "trace": [[4, 1], [3, 4]],
        "anchor": [[6, 1], [0, 3]],
        "answer_fact": [[5, 2], [2, 3]],
    }


def test_label_pooled_statistics(groups):
    p = groups["correct"]["association"]["label"]["pooled"]
    # Pearson: n (ad - bc)^2 / (row and column margins) = 12 * 11^2 / (7 * 5 * 7 * 5)
    assert p["chi2"] == pytest.approx(12 * 121 / 1225, rel=1e-12)
    assert p["chi2_p"] == pytest.approx(chi2_sf(12 * 121 / 1225, 1), rel=1e-9)
    # Yates: n (|ad - bc| - n/2)^2 / margins = 12 * 5^2 / 1225
    assert p["chi2_yates"] == pytest.approx(12 * 25 / 1225, rel=1e-12)
    assert p["phi"] == pytest.approx(11 / 35, rel=1e-12)
    assert p["odds_ratio"] == pytest.approx(15 / 4, rel=1e-12)
    # Fisher: a given the margins 7, 7, 12 is hypergeometric; P(a) = C(7,a) C(5,7-a) / 792 for
    # a = 2..7 is 21, 175, 350, 210, 35, 1; two-sided: the a with P <= P(5) = 210: 442 / 792
    assert p["fisher_p"] == pytest.approx(442 / 792, rel=1e-9) == fisher_two_sided(POOLED)
    half = Z * math.sqrt(1 / 5 + 1 / 2 + 1 / 2 + 1 / 3)  # Woolf
    assert p["odds_ratio_ci95"] == pytest.approx([3.75 * math.exp(-half), 3.75 * math.exp(half)], rel=1e-9)
    assert p["p_answer_given_step_correct"]["ci95"] == pytest.approx(list(wilson(5, 7)), rel=1e-9)
    assert p["p_answer_given_step_wrong"]["ci95"] == pytest.approx(list(wilson(2, 5)), rel=1e-9)


# CMH over the informative strata A|0, B|0, A|1 (k: a - n1 m1 / n; n1 n2 m1 m2 / (n^2 (n - 1)))
#   A|0: 2 - 2*3/4 = 1/2;  2*2*3*1 / (16*3) = 1/4;   ad/n = 1/2, bc/n = 0
#   B|0: 1 - 1*1/2 = 1/2;  1 / (4*1)       = 1/4;   ad/n = 1/2, bc/n = 0
#   A|1: 1 - 2*2/4 = 0;    16 / 48         = 1/3;   ad/n = 1/4, bc/n = 1/4
CMH_RAW = F(1) ** 2 / (F(1, 4) + F(1, 4) + F(1, 3))  # = 6/5
OR_MH = (F(1, 2) + F(1, 2) + F(1, 4)) / F(1, 4)  # = 5
# Design effect: per output u = (x - mean_k x)(y - mean_k y) within its stratum:
#   A|0 (means 1/2, 3/4): a1 1/8, a2 1/8, a3 -1/8, a4 3/8;  B|0 (1/2, 1/2): b1 1/4, b2 1/4
#   A|1 (1/2, 1/2): a1 1/4, a2 -1/4, a3 -1/4, a4 1/4
# independent: sum u^2 = 3/64 + 9/64 + 2/16 + 4/16 = 9/16;
# by item (u of both seeds added): a1 3/8, a2 -1/8, a3 -3/8, a4 5/8, b1 1/4, b2 1/4 -> 52/64 = 13/16
DEFF = F(13, 16) / F(9, 16)
# Robins-Breslow-Greenland: P = (a+d)/n, Q = (b+c)/n, R = ad/n, S = bc/n per stratum
#   A|0: P 3/4, Q 1/4, R 1/2, S 0;  B|0: P 1, Q 0, R 1/2, S 0;  A|1: P 1/2, Q 1/2, R 1/4, S 1/4
#   var log OR = sum PR / (2 R^2) + sum (PS + QR) / (2 R S) + sum QS / (2 S^2), R = 5/4, S = 1/4
RBG = F(1) / (2 * F(25, 16)) + F(3, 8) / (2 * F(5, 4) * F(1, 4)) + F(1, 8) / (2 * F(1, 16))  # 8/25 + 3/5 + 1


def test_label_stratified_by_subset_and_seed(groups):
    st = groups["correct"]["association"]["label"]["stratified"]
    assert st["by"] == "subset x seed" and st["strata"] == 4 and st["informative_strata"] == 3
    assert st["left_out"] == {"B | seed 1": [[1, 1], [0, 0]]} and st["left_out_outputs"] == 2 and st["outputs"] == 10
    assert st["items"] == 6
    assert st["margins"] == {"step_right": 5, "step_wrong": 5, "answer_right": 6, "answer_wrong": 4}
    assert st["chi2_unadjusted"] == pytest.approx(float(CMH_RAW), rel=1e-9)
    assert st["design_effect"] == pytest.approx(float(DEFF), rel=1e-9)
    assert st["chi2"] == pytest.approx(float(CMH_RAW / DEFF), rel=1e-9)  # 54/65
    assert st["p"] == pytest.approx(chi2_sf(54 / 65, 1), rel=1e-9)
    assert st["odds_ratio"] == pytest.approx(float(OR_MH), rel=1e-9)
    half = Z * math.sqrt(float(RBG) * float(DEFF))
    assert st["odds_ratio_ci95"] == pytest.approx([5 * math.exp(-half), 5 * math.exp(half)], rel=1e-9)
    bd = breslow_day([[[2, 0], [1, 1]], [[1, 0], [0, 1]], [[1, 1], [1, 1]]], 5.0) / float(DEFF)
    assert st["breslow_day"]["df"] == 2
    assert st["breslow_day"]["chi2"] == pytest.approx(bd, rel=1e-6)
    assert st["breslow_day"]["p"] == pytest.approx(chi2_sf(bd, 2), rel=1e-6)


def test_label_within_subset_and_within_seed(groups):
    a = groups["correct"]["association"]["label"]
    # subset A over its seeds (A|0, A|1): (1/2 + 0)^2 / (1/4 + 1/3) = 3/7; its design effect from the
    # u of A's outputs: independent 3/64 + 9/64 + 4/16 = 7/16, by item (9 + 1 + 9 + 25)/64 = 11/16
    sa = a["by_subset"]["A"]
    assert sa["pooled"]["chi2"] == pytest.approx(8 * (6 - 2) ** 2 / (4 * 4 * 5 * 3), rel=1e-12)  # 8/15
    assert sa["stratified"]["design_effect"] == pytest.approx(11 / 7, rel=1e-9)
    assert sa["stratified"]["chi2"] == pytest.approx(3 / 7 / (11 / 7), rel=1e-9)  # 3/11
    assert sa["stratified"]["by"] == "subset x seed"
    # seed 0 over its subsets (A|0, B|0): one output per item, design effect 1; (1/2 + 1/2)^2 / (1/2) = 2
    s0 = a["by_seed"]["0"]
    assert s0["stratified"]["design_effect"] == 1 and s0["stratified"]["chi2"] == pytest.approx(2.0, rel=1e-12)
    assert s0["pooled"]["chi2"] == pytest.approx(6 * 36 / (3 * 3 * 4 * 2), rel=1e-12)  # 3
    # seed 1: A|1 has no association, B|1 is left out
    s1 = a["by_seed"]["1"]
    assert s1["stratified"]["chi2"] == pytest.approx(0.0, abs=1e-12) and s1["stratified"]["left_out_outputs"] == 2
    assert s1["pooled"]["chi2"] == pytest.approx(0.0, abs=1e-12) and s1["pooled"]["odds_ratio"] == pytest.approx(1.0)


def test_shares(groups):
    a = groups["correct"]["association"]
    # both right: a over all 12 outputs; P(answer | step right) = a / (a + b); P(answer | wrong) = c / (c + d)
    assert a["label"]["both_right"]["p"] == pytest.approx(5 / 12)
    assert a["label"]["answer_given_step_right"]["p"] == pytest.approx(5 / 7)
    assert a["label"]["answer_given_step_wrong"]["p"] == pytest.approx(2 / 5)
    # the anchor: both right is a share of all 12 outputs, the conditionals of the 10 of A and b1
    assert a["anchor"]["both_right"]["p"] == pytest.approx(6 / 12)
    assert a["anchor"]["answer_given_step_right"]["p"] == pytest.approx(6 / 7)
    assert a["anchor"]["answer_given_step_wrong"]["p"] == pytest.approx(0.0)


def test_the_papers_definitions(groups):
    p = groups["correct"]["paper"]
    # the a4 outputs (one per seed) have no <think>: 10 evaluated; label tables without them
    assert p["evaluated"] == 10 and p["unevaluated"] == 2
    assert p["label_accuracy"] == pytest.approx(7 / 12) and p["evidence_accuracy"] == pytest.approx(10 / 12)
    lab = p["association"]["label"]
    assert lab["table"] == [[5, 2], [2, 1]]
    assert lab["both_right"]["p"] == pytest.approx(5 / 12)  # of all outputs, as the paper's 273/950
    assert lab["answer_given_step_right"]["p"] == pytest.approx(5 / 7)
    assert lab["answer_given_step_wrong"]["p"] == pytest.approx(2 / 3)
    assert p["regression"]["n"] == 10 and p["regression"]["clusters"] == 5  # a4 is not evaluated


def test_regression_design(groups):
    reg = groups["correct"]["regression"]
    # answer ~ label + evidence + subset + seed, 12 outputs in 6 clusters (items)
    assert reg["covariates"] == ["subset", "seed"] and set(reg["terms"]) == {"label", "evidence"}
    assert reg["n"] == 12 and reg["clusters"] == 6 and reg["dropped_levels"] == {}


def test_findings_quote_the_hand_computed_numbers(groups):
    f = next(x for x in groups["correct"]["findings"] if x["step"] == "label" and x["definitions"] == "tracekd")
    p = chi2_sf(54 / 65, 1)
    # 4 outputs with the answer wrong in the informative strata: no verdict, the numbers quoted
    assert (
        f["verdict"] == "too few"
        and "too few informative outputs for a verdict (4 outputs with the answer wrong in the 10 outputs" in f["text"]
    )
    assert f"CMH χ² = {54 / 65:.2f}, p = {p:.3g}, stratified by subset x seed, design effect {13 / 9:.2f}" in f["text"]
    assert "Mantel-Haenszel odds ratio 5.00" in f["text"]
    assert "both right in 41.7 % of outputs, P(answer right | step right) = 71.4 %" in f["text"]
    assert "pooled χ² (the paper's test) 1.2" in f["text"]
    assert "2 outputs left out, in strata where the step or the answer never varies (B | seed 1)" in f["text"]


# -- report.md ------------------------------------------------------------------------------------
def test_report_headline(md, groups):
    (row,) = md["Headline: answer accuracy (%)"]
    ci = groups["correct"]["rates"]["answer_accuracy"]["ci95"]
    sd = (F(4, 6) - F(3, 6)) / math.sqrt(2)
    # 58.3 [...] (sd 11.8); parsed 91.7 (one of the 12 correct-condition outputs is unparsable)
    assert row["correct"] == f"{pct(F(7, 12))} [{pct(ci[0])}, {pct(ci[1])}] (sd {pct(sd)}); parsed {pct(F(11, 12))}"
    assert row["baseline"].startswith("33.3 [") and "sd" not in row["baseline"]


def test_report_steps(md):
    rows = {r["condition"]: r for r in md["Trace steps (%, tracekd definitions)"]}
    c = rows["correct"]
    assert (c["seeds"], c["n"]) == ("2", "6")
    for col, key in (
        ("parse rate", "parse_rate"),
        ("label", "label_accuracy"),
        ("evidence", "evidence_accuracy"),
        ("anchor", "anchor_accuracy"),
        ("answer_fact", "answer_fact_accuracy"),
        ("trace", "trace_accuracy"),
        ("evidence F1", "evidence_f1"),
        ("answer", "answer_accuracy"),
    ):
        assert c[col].split(" [")[0] == pct(RATES[key][0]), col
    b = rows["baseline"]
    assert (b["seeds"], b["n"]) == ("1", "6")
    lo, hi = wilson(0, 6)
    assert b["label"] == f"0.0 [{pct(lo)}, {pct(hi)}]" and b["parse rate"] == f"100.0 [{pct(6 / (6 + Z * Z))}, 100.0]"


def test_report_subsets(md):
    rows = {r["subset"]: r for r in md["Per subset: answer accuracy (%)"]}
    assert {s: (r["baseline"], r["correct"]) for s, r in rows.items()} == {
        "A": (pct(F(1, 4)), pct(F(5, 8))),
        "B": (pct(F(1, 2)), pct(F(2, 4))),
    }


def test_report_association(md):
    rows = {(r["condition"], r["step"], r["defs"]): r for r in md["Does a right trace step go with a right answer?"]}
    r = rows[("correct", "label", "tracekd")]
    assert r["a/b/c/d"] == "5/2/2/3" and r["χ² pool"] == f"{12 * 121 / 1225:.2f}"
    assert r["CMH χ²"] == f"{54 / 65:.2f}" and r["CMH p"] == f"{chi2_sf(54 / 65, 1):.3g}"
    assert r["MH OR [95 % CI]"].startswith("5.00 [")
    assert r["both✓"].startswith(pct(F(5, 12)) + " [") and r["P(a|s✓)"].startswith(pct(F(5, 7)) + " [")
    assert r["P(a|s✗)"].startswith(pct(F(2, 5)) + " [")
    assert rows[("correct", "label", "paper")]["a/b/c/d"] == "5/2/2/1"
    assert rows[("correct", "anchor", "tracekd")]["a/b/c/d"] == "6/1/0/3"


def test_report_strata(md):
    sub = {(r["condition"], r["step"], r["subset"]): r for r in md["Per subset (tracekd definitions)"]}
    a = sub[("correct", "label", "A")]
    assert (a["a/b/c/d"], a["χ²"], a["OR"], a["CMH χ²"]) == ("3/1/2/2", f"{8 / 15:.2f}", "3.00", f"{3 / 11:.2f}")
    assert a["Fisher p"] == f"{fisher_two_sided([[3, 1], [2, 2]]):.3g}" and a["φ"] == f"{4 / math.sqrt(240):.3f}"
    seed = {(r["condition"], r["step"], r["seed"]): r for r in md["Per seed (tracekd definitions)"]}
    assert (seed[("correct", "label", "0")]["a/b/c/d"], seed[("correct", "label", "0")]["χ²"]) == ("3/0/1/2", "3.00")
    assert seed[("correct", "label", "0")]["CMH χ²"] == "2.00"
    assert (seed[("correct", "label", "1")]["a/b/c/d"], seed[("correct", "label", "1")]["OR"]) == ("2/2/1/1", "1.00")


def test_paired_comparison_of_the_conditions(run):
    """Conditions compared on the same items, seeds averaged within an item (never counted as
    independent outputs). Per item, correct (mean of its 2 seeds) minus baseline:
    a1 0, a2 +1/2, a3 +1, a4 0, b1 -1/2, b2 +1/2: mean +1/4; 3 items better, 1 worse: sign test
    p = P(|Bin(4, 1/2) - 2| >= 1) = 0.625 -> not significant, worded so."""
    results = json.loads((run / "results.json").read_text())
    (c,) = results["comparisons"]
    assert (c["a"], c["b"], c["items"]) == ("correct", "baseline", 6)
    assert c["accuracy"] == pytest.approx([7 / 12, 2 / 6]) and c["difference"] == pytest.approx(1 / 4)
    assert (c["a_better"], c["b_better"]) == (3, 1) and c["p"] == pytest.approx(0.625)
    lo, hi = c["ci95"]
    assert lo < 1 / 4 < hi
    assert "not significant" in c["text"] and "better than" not in c["text"] and "accurately than" not in c["text"]


def test_rows_file_recomputes_the_statistics_and_has_fixed_bytes(run, groups):
    """rows.jsonl.gz beside results.json holds every per-example row the statistics come from
    (with dataset, model, condition and seed), compressed with no time stamp: the same rows give
    the same bytes, and the group rates recompute from it."""
    import gzip

    from tracekd.layout import ROWS
    from tracekd.report.results import write_rows

    path = run / ROWS
    assert json.loads((run / "results.json").read_text())["rows"] == ROWS
    rows = [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]
    assert len(rows) == 6 * 3
    mine = [r["answer"]["correct"] for r in rows if r["condition"] == "correct"]
    assert sum(mine) / len(mine) == pytest.approx(groups["correct"]["rates"]["answer_accuracy"]["mean"])
    again = run / "again.jsonl.gz"
    by_key: dict = {}
    for r in rows:
        key = (r.pop("dataset"), r.pop("model"), r.pop("condition"))
        by_key.setdefault(key, {}).setdefault(r.pop("seed"), []).append(r)
    write_rows(again, by_key)
    assert again.read_bytes() == path.read_bytes() and path.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0
