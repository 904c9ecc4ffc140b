"""Stratified association, the regression and the item bootstrap against closed-form hand
computations (written here, without statsmodels), and reproductions of the pooling trap: pooled
tables manufacture significance that the stratified test does not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tracekd.score.stats import (
    ItemBootstrap,
    regression,
    stratified,
    wilson,
)

Z = 1.959963984540054

# the label step on the paper's correct-trace outputs, per subset (tracekd's parse on the shared files)
PUBLISHED_LABEL = {
    "during": [[209, 251], [64, 95]],
    "equal": [[47, 22], [6, 12]],
    "mix": [[0, 4], [5, 104]],
    "overlap": [[0, 0], [47, 84]],
}


def expand(tables: dict[str, list[list[int]]], prefix: str = "i"):
    """Per-output arrays (step, answer, stratum, item id) from 2x2 tables, one item per output."""
    x, y, s, items = [], [], [], []
    for name, ((a, b), (c, d)) in tables.items():
        for step, ans, k in ((1, 1, a), (1, 0, b), (0, 1, c), (0, 0, d)):
            x += [step] * k
            y += [ans] * k
            s += [name] * k
    items = [f"{prefix}{i}" for i in range(len(x))]
    return np.array(x, bool), np.array(y, bool), np.array(s), np.array(items)


def hand_cmh(tables):
    """Cochran-Mantel-Haenszel chi2 (no continuity correction), the Mantel-Haenszel odds ratio,
    the Robins-Breslow-Greenland variance of its log, and the Breslow-Day statistic, by the
    textbook formulas; strata with a zero margin are skipped (they contribute nothing)."""
    num = var = r = s = 0.0
    used = []
    for (a, b), (c, d) in tables:
        n1, n2, m1, m2, n = a + b, c + d, a + c, b + d, a + b + c + d
        if 0 in (n1, n2, m1, m2):
            continue
        used.append(((a, b), (c, d)))
        num += a - n1 * m1 / n
        var += n1 * n2 * m1 * m2 / (n * n * (n - 1))
        r += a * d / n
        s += b * c / n
    chi2 = num**2 / var
    orr = r / s
    # Robins, Breslow & Greenland (1986)
    pr = sum((a + d) / (a + b + c + d) * a * d / (a + b + c + d) for (a, b), (c, d) in used)
    ps_qr = sum(((a + d) * b * c + (b + c) * a * d) / (a + b + c + d) ** 2 for (a, b), (c, d) in used)
    qs = sum((b + c) / (a + b + c + d) * b * c / (a + b + c + d) for (a, b), (c, d) in used)
    var_log = pr / (2 * r * r) + ps_qr / (2 * r * s) + qs / (2 * s * s)
    bd = 0.0
    for (a, b), (c, d) in used:
        n1, m1, n = a + b, a + c, a + b + c + d
        # expected a under the common odds ratio: (1 - OR) e^2 + (OR (n1 + m1) + n - n1 - m1) e - OR n1 m1 = 0
        qa, qb, qc = 1 - orr, orr * (n1 + m1) + n - n1 - m1, -orr * n1 * m1
        roots = [(-qb + sg * math.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa) for sg in (1, -1)]
        e = next(t for t in roots if max(0, n1 + m1 - n) <= t <= min(n1, m1))
        v = 1 / (1 / e + 1 / (n1 - e) + 1 / (m1 - e) + 1 / (n - n1 - m1 + e))
        bd += (a - e) ** 2 / v
    return chi2, orr, var_log, bd, len(used)


def test_cmh_equals_hand_computation():
    tables = {"s1": [[12, 5], [9, 14]], "s2": [[30, 10], [15, 45]], "s3": [[6, 9], [4, 11]], "dead": [[0, 0], [7, 5]]}
    x, y, s, items = expand(tables)
    r = stratified(x, y, s, items)
    chi2, orr, var_log, bd, k = hand_cmh(tables.values())
    assert r["estimable"] and r["strata"] == 4 and r["informative_strata"] == 3 == k
    assert r["left_out"] == {"dead": [[0, 0], [7, 5]]} and r["left_out_outputs"] == 12
    assert r["design_effect"] == 1.0 and r["chi2"] == pytest.approx(chi2, rel=1e-12) == r["chi2_unadjusted"]
    assert r["p"] == pytest.approx(math.erfc(math.sqrt(chi2 / 2)), rel=1e-9)  # chi-square, 1 df
    assert r["odds_ratio"] == pytest.approx(orr, rel=1e-12)
    half = Z * math.sqrt(var_log)
    assert r["odds_ratio_ci95"] == pytest.approx([orr * math.exp(-half), orr * math.exp(half)], rel=1e-9)
    assert r["breslow_day"]["chi2"] == pytest.approx(bd, rel=1e-9) and r["breslow_day"]["df"] == 2
    assert r["breslow_day"]["p"] == pytest.approx(math.exp(-bd / 2), rel=1e-9)  # chi-square, 2 df
    assert r["items"] == 170 and r["margins"] == {
        "step_right": 72,
        "step_wrong": 98,
        "answer_right": 76,
        "answer_wrong": 94,
    }


def test_published_label_tables_pooled_vs_stratified():
    """Issue 8: pooled chi2 34.4 (phi 0.19) while CMH over the 4 subsets gives 3.63 (p 0.057)."""
    from tracekd.score.stats import association, table_2x2

    x, y, s, items = expand(PUBLISHED_LABEL)
    pooled = association(table_2x2(x, y))
    assert pooled["chi2"] == pytest.approx(34.418, abs=1e-3) and pooled["phi"] == pytest.approx(0.19, abs=0.005)
    r = stratified(x, y, s, items)
    chi2, orr, _, _, _ = hand_cmh(PUBLISHED_LABEL.values())
    assert r["chi2"] == pytest.approx(chi2) == pytest.approx(3.633, abs=1e-3)
    assert r["p"] == pytest.approx(0.0566, abs=1e-4) and r["odds_ratio"] == pytest.approx(orr)
    assert list(r["left_out"]) == ["overlap"]


def test_breslow_day_at_a_common_odds_ratio_of_one():
    """statsmodels divides by (1 - OR) for the expected cell: at OR = 1 the expected cell is the CMH one."""
    tables = {"a": [[40, 10], [40, 10]], "b": [[2, 8], [18, 72]]}
    x, y, s, items = expand(tables)
    r = stratified(x, y, s, items)
    assert r["odds_ratio"] == pytest.approx(1.0) and r["chi2"] == pytest.approx(0.0, abs=1e-12)
    assert r["breslow_day"]["chi2"] == pytest.approx(0.0, abs=1e-12) and r["breslow_day"]["p"] == pytest.approx(1.0)


def test_not_estimable_and_infinite_odds_ratio():
    x, y, s, items = expand({"a": [[0, 0], [5, 9]], "b": [[0, 0], [3, 3]]})
    r = stratified(x, y, s, items)
    assert not r["estimable"] and r["chi2"] is None and r["informative_strata"] == 0 and r["left_out_outputs"] == 20
    x, y, s, items = expand({"a": [[5, 0], [3, 7]], "b": [[4, 0], [2, 2]]})
    r = stratified(x, y, s, items)
    assert (
        r["estimable"]
        and r["odds_ratio"] == math.inf
        and r["odds_ratio_ci95"] == [None, None]
        and "b*c = 0" in r["note"]
    )


def test_copies_of_a_seed_do_not_change_the_stratified_test():
    """Issue 8: 1, 2, 3 copies of one seed pooled give chi2 7.25 -> 14.5 -> 21.8; the stratified
    test, its interval and the homogeneity test stay the same (design effect = number of copies)."""
    x, y, s, items = expand({"during": [[20, 30], [10, 40]], "equal": [[47, 22], [6, 12]]})
    one = stratified(x, y, s, items)
    for k in (2, 3):
        seeds = np.repeat(np.arange(k), len(x)).astype(str)
        strata = np.char.add(np.tile(s, k), seeds)
        r = stratified(np.tile(x, k), np.tile(y, k), strata, np.tile(items, k))
        assert r["design_effect"] == pytest.approx(k)
        assert r["chi2_unadjusted"] == pytest.approx(k * one["chi2"])
        assert r["chi2"] == pytest.approx(one["chi2"]) and r["p"] == pytest.approx(one["p"])
        assert r["odds_ratio"] == pytest.approx(one["odds_ratio"])
        assert r["odds_ratio_ci95"] == pytest.approx(one["odds_ratio_ci95"])


# -- bootstrap -------------------------------------------------------------------------------------------
def test_bootstrap_one_seed_is_close_to_wilson_and_reproducible():
    y = np.array([1] * 60 + [0] * 140, float)
    items = np.arange(200)
    a = ItemBootstrap(items).intervals({"acc": (y, np.ones(200))})["acc"]
    b = ItemBootstrap(items[::-1]).intervals({"acc": (y[::-1], np.ones(200))})["acc"]
    assert a == b and a["method"] == "bootstrap" and a["p"] == pytest.approx(0.3)
    w = wilson(60, 200)["ci95"]
    assert a["ci95"][0] == pytest.approx(w[0], abs=0.01) and a["ci95"][1] == pytest.approx(w[1], abs=0.01)


def test_bootstrap_identical_seeds_give_the_interval_of_one():
    rng = np.random.default_rng(3)
    y = rng.random(150) < 0.4
    items = np.array([f"x{i}" for i in range(150)])
    one = ItemBootstrap(items).intervals(
        {"acc": (y, np.ones(150)), "cond": (y[:75].tolist() + [0] * 75, np.r_[np.ones(75), np.zeros(75)])}
    )
    two = ItemBootstrap(np.tile(items, 2)).intervals(
        {
            "acc": (np.tile(y, 2), np.ones(300)),
            "cond": (np.tile(y[:75].tolist() + [0] * 75, 2), np.tile(np.r_[np.ones(75), np.zeros(75)], 2)),
        }
    )
    assert one == two


def test_bootstrap_disagreeing_seeds_stay_inside_zero_one():
    """Seeds at 0.8 and 0.2 on the same 50 items: a t interval over the 2 seeds is 0.5 +- 3.8."""
    items = np.tile(np.arange(50), 2)
    y = np.r_[np.arange(50) < 40, np.arange(50) < 10].astype(float)
    r = ItemBootstrap(items).intervals({"acc": (y, np.ones(100))})["acc"]
    assert r["p"] == pytest.approx(0.5) and 0 <= r["ci95"][0] < 0.5 < r["ci95"][1] <= 1


def test_bootstrap_without_variation_falls_back_to_wilson():
    r = ItemBootstrap(np.arange(40)).intervals(
        {"acc": (np.zeros(40), np.ones(40)), "none": (np.zeros(40), np.zeros(40))}
    )
    assert r["acc"]["method"] == "wilson" and r["acc"]["ci95"] == pytest.approx(wilson(0, 40)["ci95"])
    assert r["none"]["p"] is None


# -- regression ----------------------------------------------------------------------------------------
def _newton_logit(X, y):
    beta = np.zeros(X.shape[1])
    for _ in range(100):
        p = 1 / (1 + np.exp(-X @ beta))
        step = np.linalg.solve(X.T @ (X * (p * (1 - p))[:, None]), X.T @ (y - p))
        beta += step
        if np.abs(step).max() < 1e-12:
            break
    return beta


def test_regression_equals_newton_fit_with_cluster_sandwich():
    """Label drives the answer; evidence only goes with the label. Adjusted, evidence has no effect."""
    rng = np.random.default_rng(0)
    n_items, seeds = 300, 2
    subset = np.tile(np.where(np.arange(n_items) % 3 == 0, "a", "b"), seeds)
    item = np.tile(np.arange(n_items), seeds)
    seed = np.repeat(np.arange(seeds), n_items).astype(str)
    label = rng.random(n_items * seeds) < 0.5
    evidence = np.where(rng.random(n_items * seeds) < 0.8, label, ~label)
    y = rng.random(n_items * seeds) < np.where(label, 0.7, 0.3) + np.where(subset == "a", 0.1, 0)
    r = regression(y, {"label": label, "evidence": evidence}, {"subset": subset, "seed": seed}, item)
    X = np.column_stack([np.ones(len(y)), subset == "b", seed == "1", label, evidence]).astype(float)
    beta = _newton_logit(X, y.astype(float))
    p = 1 / (1 + np.exp(-X @ beta))
    bread = np.linalg.inv(X.T @ (X * (p * (1 - p))[:, None]))
    scores = X * (y - p)[:, None]
    meat = sum(np.outer(g, g) for g in (scores[item == i].sum(0) for i in range(n_items)))
    n, k, g = len(y), X.shape[1], n_items
    cov = bread @ meat @ bread * g / (g - 1) * (n - 1) / (n - k)  # statsmodels' small-sample correction
    for j, name in ((3, "label"), (4, "evidence")):
        t = r["terms"][name]
        assert t["estimable"] and t["coef"] == pytest.approx(beta[j], rel=1e-6)
        assert t["se"] == pytest.approx(math.sqrt(cov[j, j]), rel=1e-6)
        assert t["odds_ratio_ci95"] == pytest.approx([math.exp(beta[j] - Z * t["se"]), math.exp(beta[j] + Z * t["se"])])
    assert r["terms"]["label"]["p"] < 1e-6 and r["terms"]["evidence"]["p"] > 0.05
    assert r["clusters"] == n_items and r["n"] == n_items * seeds and r["covariates"] == ["subset", "seed"]


def test_regression_reports_what_it_cannot_estimate():
    rng = np.random.default_rng(1)
    n = 200
    y = rng.random(n) < 0.5
    label = rng.random(n) < 0.5
    subset = np.where(np.arange(n) < 150, "a", "b")
    # evidence right only where the answer is right: quasi-separation; trace constant; copy collinear
    r = regression(
        y,
        {"label": label, "evidence": label & y, "never": np.zeros(n, bool), "copy": label},
        {"subset": subset},
        np.arange(n),
    )
    assert r["terms"]["label"]["estimable"]
    assert not r["terms"]["evidence"]["estimable"] and "quasi-separation" in r["terms"]["evidence"]["note"]
    assert not r["terms"]["never"]["estimable"] and "wrong in every output" in r["terms"]["never"]["note"]
    assert not r["terms"]["copy"]["estimable"] and "collinear" in r["terms"]["copy"]["note"]
    # a subset whose answers are all wrong is left out, not fitted to infinity
    y2 = y & (subset == "a")
    r = regression(y2, {"label": label}, {"subset": subset}, np.arange(n))
    assert r["dropped_levels"] == {"subset": ["b"]} and r["n"] == 150 and r["terms"]["label"]["estimable"]
    r = regression(np.zeros(n, bool), {"label": label}, {"subset": subset}, np.arange(n))
    assert not r["estimable"] and not r["terms"]["label"]["estimable"]


# -- training loss -------------------------------------------------------------------------------------


# R 4.x, `mantelhaen.test(array(c(a, c, b, d, ...), dim = c(2, 2, k)), exact = TRUE)` on each
# case's strata [[a, b], [c, d]]: p.value, estimate, conf.int (R's uniroot tolerance ~1e-4 on the
# estimate and the interval; the p value is exact arithmetic)
R_EXACT = {
    "one_small": (
        [[[1, 0], [10, 10]], [[2, 3], [4, 1]]],
        (0.63718820861678, 0.561432403016019, 0.0330554893853209, 7.21786962492357),
    ),
    "zero_row_stratum": (
        [[[1, 0], [8, 12]], [[0, 0], [30, 40]]],
        (0.428571428571428, math.inf, 0.0341877677408855, math.inf),
    ),
    "three": (
        [[[3, 1], [2, 4]], [[5, 2], [3, 6]], [[1, 3], [4, 2]]],
        (0.512359862359862, 1.88742619760426, 0.43565994534551, 8.69469577007722),
    ),
    "moderate": (
        [[[20, 10], [15, 25]], [[8, 12], [9, 11]]],
        (0.124439105090932, 1.94051088434749, 0.851361315738911, 4.50144725363014),
    ),
    "zero_a": ([[[0, 5], [6, 3]], [[0, 4], [2, 2]]], (0.00663622092193521, 0.0, 0.0, 0.602996009187513)),
    "all_a": ([[[4, 0], [3, 5]], [[2, 0], [1, 6]]], (0.0101010101010101, math.inf, 1.70562416328216, math.inf)),
    "large": (
        [[[120, 80], [90, 110]], [[40, 60], [30, 70]], [[15, 5], [10, 12]]],
        (0.000229523064714268, 1.81638331088557, 1.3065699403096, 2.53092090635131),
    ),
}


@pytest.mark.parametrize("name", list(R_EXACT))
def test_exact_stratified_test_equals_r(name):
    from tracekd.score.stats import exact_stratified

    tables, (p, estimate, lo, hi) = R_EXACT[name]
    got = exact_stratified(np.array(tables))
    assert got["p"] == pytest.approx(p, rel=1e-9)
    for mine, r in zip((got["odds_ratio"], *got["odds_ratio_ci95"]), (estimate, lo, hi)):
        assert mine == pytest.approx(r, rel=2e-3, abs=1e-9)


def _rows(tables):
    """Per-output step / answer / stratum arrays of the given strata's 2x2 tables."""
    x, y, s = [], [], []
    for k, ((a, b), (c, d)) in enumerate(tables):
        for step, answer, n in ((1, 1, a), (1, 0, b), (0, 1, c), (0, 0, d)):
            x += [step] * n
            y += [answer] * n
            s += [f"s{k}"] * n
    return np.array(x, bool), np.array(y, bool), np.array(s)


def test_small_strata_get_the_exact_test_and_no_verdict_on_one_output():
    """Issue 19's defect: "a right step goes with a right answer (CMH χ² 4.25, p = 0.039)" came from
    one informative stratum of 21 outputs with one step-right output; the exact p is far from
    significant, and one output in a margin is too few for any verdict."""
    from tracekd.score.findings import sentence

    x, y, s = _rows([[[1, 0], [3, 17]], [[0, 0], [30, 40]]])
    st = stratified(x, y, s, np.arange(len(x)))
    assert st["chi2"] == pytest.approx(4.25) and st["p"] == pytest.approx(0.0392, abs=1e-4)  # the approximation
    assert st["min_expected"] < 5 and st["exact"]["p"] == pytest.approx(4 / 21, rel=1e-12)  # 0.19, as the issue says
    assert st["exact"]["p"] == pytest.approx(exact_p_one_stratum([[1, 0], [3, 17]]), rel=1e-12)
    block = {"table": [[1, 0], [33, 57]], "pooled": {"chi2": None}, "stratified": {**st, "by": "subset"}}
    verdict, text = sentence("m / c", "label", "tracekd", block, [])
    assert verdict == "too few" and "too few informative outputs" in text and "goes with" not in text
    assert "exact conditional test p = 0.19" in text
    # with five step-right outputs the exact test gives the verdict
    x, y, s = _rows([[[5, 0], [4, 14]], [[0, 0], [30, 40]]])
    st = stratified(x, y, s, np.arange(len(x)))
    block = {"table": [[5, 0], [34, 54]], "pooled": {"chi2": None}, "stratified": {**st, "by": "subset"}}
    verdict, text = sentence("m / c", "label", "tracekd", block, [])
    assert st["exact"] and verdict == "positive" and "exact conditional test p = " in text


def test_the_exact_test_is_not_applied_to_several_outputs_of_one_item():
    """The exact conditional test assumes independent outputs. Two seeds of the same items (strata
    subset x seed) can have a design effect of exactly 1 (the clustering does not inflate the
    variance), yet the outputs are not independent: no exact test then, whatever the design effect."""
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = 30
        x = rng.random(2 * n) < 0.15
        y = rng.random(2 * n) < 0.5
        strata = np.repeat(["seed0", "seed1"], n)
        items = np.tile(np.arange(n), 2)
        st = stratified(x, y, strata, items)
        if st["estimable"] and st["min_expected"] < 5:
            assert st["exact"] is None, trial
    x, y, s = _rows([[[1, 0], [3, 17]], [[0, 0], [30, 40]]])
    assert stratified(x, y, s, np.arange(len(x)))["exact"] is not None  # one output per item: applied


def exact_p_one_stratum(table):
    """One stratum: the exact conditional test is Fisher's exact test."""
    from scipy.stats import fisher_exact

    return fisher_exact(table).pvalue


def test_a_test_and_an_interval_that_disagree_give_no_verdict():
    """ "goes with" was printed at p 0.047 with an odds-ratio interval [0.94, 7.67] including 1."""
    from tracekd.score.findings import sentence

    st = {
        "estimable": True,
        "p": 0.047,
        "chi2": 3.9,
        "odds_ratio": 2.7,
        "odds_ratio_ci95": [0.94, 7.67],
        "design_effect": 1.3,
        "margins": {"step_right": 40, "step_wrong": 60, "answer_right": 50, "answer_wrong": 50},
        "outputs": 100,
        "by": "subset x seed",
    }
    block = {"table": [[20, 20], [30, 30]], "pooled": {"chi2": None}, "stratified": st}
    verdict, text = sentence("m / c", "label", "tracekd", block, [])
    assert verdict == "inconclusive" and "disagree" in text and "goes with" not in text


def test_breslow_day_on_small_strata_states_its_assumption():
    from tracekd.score.findings import caveats

    x, y, s = _rows([[[5, 2], [3, 6]], [[2, 5], [6, 3]], [[6, 1], [2, 5]]])
    st = stratified(x, y, s, np.arange(len(x)))
    assert st["breslow_day"] is not None and st["min_expected"] < 5
    notes = caveats({"stratified": st}, 1, 1.0)
    assert any("Breslow-Day assumes large counts" in n for n in notes)


def test_paired_comparison_with_one_seed_is_mcnemars_exact_test():
    """One seed per condition: the sign test of the per-item differences is McNemar's exact test
    on the discordant pairs (b = 15 items right only under A, c = 5 right only under B)."""
    from scipy.stats import binomtest

    from tracekd.score.stats import paired_comparison

    a = {f"i{k}": [k < 15 or 20 <= k < 60] for k in range(100)}
    b = {f"i{k}": [15 <= k < 60] for k in range(100)}
    c = paired_comparison(a, b)
    assert (c["a_better"], c["b_better"], c["items"]) == (15, 5, 100)
    assert c["p"] == pytest.approx(binomtest(15, 20, 0.5).pvalue, rel=1e-12)
    assert c["difference"] == pytest.approx(0.10) and c["ci95"][0] < 0.10 < c["ci95"][1]
    # an item only one condition has is not compared
    assert paired_comparison({**a, "extra": [True]}, b)["items"] == 100
