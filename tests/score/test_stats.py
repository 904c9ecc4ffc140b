"""Statistics of one 2x2 table against textbook formulas (computed here without scipy)."""

from __future__ import annotations

import math

import pytest

from tracekd.score.stats import association, table_2x2

TABLES = [[[12, 5], [9, 14]], [[30, 10], [15, 45]], [[3, 1], [1, 3]], [[1, 9], [11, 3]]]


def _chi2(t, yates):
    (a, b), (c, d) = t
    n = a + b + c + d
    num = abs(a * d - b * c)
    if yates:
        num = max(0.0, num - n / 2)
    return n * num**2 / ((a + b) * (c + d) * (a + c) * (b + d))


def _fisher_two_sided(t):
    (a, b), (c, d) = t
    r1, r2, c1, n = a + b, c + d, a + c, a + b + c + d

    def p(x):
        return math.comb(r1, x) * math.comb(r2, c1 - x) / math.comb(n, c1)

    p0 = p(a)
    lo, hi = max(0, c1 - r2), min(r1, c1)
    return sum(p(x) for x in range(lo, hi + 1) if p(x) <= p0 * (1 + 1e-7))


def _wilson(k, n, z=1.959963984540054):
    ph = k / n
    centre = (ph + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.mark.parametrize("t", TABLES)
def test_against_textbook(t):
    r = association(t)
    (a, b), (c, d) = t
    for yates, key in ((False, "chi2"), (True, "chi2_yates")):
        chi2 = _chi2(t, yates)
        assert r[key] == pytest.approx(chi2, abs=1e-6)
        # chi-square with 1 df: p = erfc(sqrt(chi2 / 2))
        assert r[key + "_p"] == pytest.approx(math.erfc(math.sqrt(chi2 / 2)), abs=1e-6)
    assert r["fisher_p"] == pytest.approx(_fisher_two_sided(t), abs=1e-6)
    phi = (a * d - b * c) / math.sqrt((a + b) * (c + d) * (a + c) * (b + d))
    assert r["phi"] == pytest.approx(phi, abs=1e-6)
    # Woolf's interval for the sample odds ratio
    lor, se = math.log(a * d / (b * c)), math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    assert r["odds_ratio"] == pytest.approx(a * d / (b * c), abs=1e-6)
    assert r["odds_ratio_ci95"] == pytest.approx(
        [math.exp(lor - 1.959963984540054 * se), math.exp(lor + 1.959963984540054 * se)], abs=1e-6
    )
    pc, pw = r["p_answer_given_step_correct"], r["p_answer_given_step_wrong"]
    assert pc["p"] == pytest.approx(a / (a + b)) and pw["p"] == pytest.approx(c / (c + d))
    assert pc["ci95"] == pytest.approx(list(_wilson(a, a + b)), abs=1e-6)
    assert pw["ci95"] == pytest.approx(list(_wilson(c, c + d)), abs=1e-6)


def test_known_values():
    # Fisher's tea-tasting table: two-sided p = 17/35
    assert association([[3, 1], [1, 3]])["fisher_p"] == pytest.approx(17 / 35, abs=1e-9)
    # A classic example: p = 0.002759
    assert association([[1, 9], [11, 3]])["fisher_p"] == pytest.approx(0.0027594, abs=1e-6)


def test_degenerate_tables():
    r = association([[0, 0], [45, 86]])
    assert r["chi2"] is None and r["phi"] is None and r["p_answer_given_step_correct"]["p"] is None
    assert r["fisher_p"] == pytest.approx(1.0)
    r = association([[5, 0], [3, 7]])
    assert r["odds_ratio"] == math.inf and r["odds_ratio_ci95"] == [None, None] and r["chi2"] is not None
    assert association([[0, 0], [0, 0]])["n"] == 0


def test_table_orientation():
    """Rows are the step, columns the answer: all four cells differ, so a transposed table (step
    and answer swapped) or swapped rows/columns cannot pass."""
    step = [True] * 6 + [False] * 5
    answer = [True] * 5 + [False] * 1 + [True] * 3 + [False] * 2
    assert table_2x2(step, answer) == [[5, 1], [3, 2]]
    assert table_2x2(answer, step) == [[5, 3], [1, 2]]


def test_asymmetric_table_in_closed_form():
    """[[8, 2], [4, 6]]: a = 8 step right & answer right, b = 2, c = 4, d = 6 (n = 20), worked by hand.
    P(answer | step right) = 8/10, P(answer | step wrong) = 4/10; OR = (8*6)/(2*4) = 6;
    chi2 = n (ad - bc)^2 / (r1 r2 c1 c2) = 20 * 40^2 / (10 * 10 * 12 * 8) = 10/3;
    phi = 40 / sqrt(9600); Yates: 20 * (40 - 10)^2 / 9600 = 15/8.
    Fisher: margins r1 = 10, c1 = 12; P(a = k) = C(10, k) C(10, 12 - k) / C(20, 12); the two-sided
    p sums the k whose probability is at most P(a = 8): k = 2, 3, 4, 8, 9, 10 (P(4) = P(8))."""
    r = association([[8, 2], [4, 6]])
    assert r["p_answer_given_step_correct"]["p"] == 0.8 and r["p_answer_given_step_wrong"]["p"] == 0.4
    assert r["odds_ratio"] == pytest.approx(6.0)
    assert r["chi2"] == pytest.approx(10 / 3) and r["chi2_yates"] == pytest.approx(15 / 8)
    assert r["phi"] == pytest.approx(40 / math.sqrt(9600))
    fisher = sum(math.comb(10, k) * math.comb(10, 12 - k) for k in (2, 3, 4, 8, 9, 10)) / math.comb(20, 12)
    assert r["fisher_p"] == pytest.approx(fisher)
    # the transposed table has the same chi2, phi and OR but other conditional rates
    t = association([[8, 4], [2, 6]])
    assert (
        t["p_answer_given_step_correct"]["p"] == pytest.approx(8 / 12) and t["p_answer_given_step_wrong"]["p"] == 0.25
    )
