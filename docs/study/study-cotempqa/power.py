"""The power calculation behind the CoTempQA study's 40 test items per subset (160 items).

Run: python docs/study/study-cotempqa/power.py  (a few seconds; prints JSON).

Two tests carry the study's claims; each is powered here on one seed's 160 outputs (the study has
three seeds per item, which the statistics treat as one cluster, so one seed is the conservative
count):

1. A condition against another on the same items (accuracy difference, paired): the exact sign test
   on the discordant items (McNemar's exact test). With a share `d` of items answered right by one
   condition only, and a true difference `delta`, the discordant count is Binomial(n, d) and each
   discordant item favours the better condition with probability (d + delta) / (2 d).
2. A step's association with the answer inside one condition, stratified by subset (the report's
   exact conditional test; CMH for large strata): simulated with 4 subsets of 40 outputs, a common
   odds ratio `or_` between step and answer in every subset, and the step's and the answer's rates
   (the margins) either both 0.5 (the most power an odds ratio can have) or, more like a trained
   model, the step right in 80 % and the answer in 40 % of outputs; power = share of 2,000
   simulations with p < 0.05 (two-sided CMH test without continuity correction, statsmodels'
   StratifiedTable). One seed: the report's design-effect correction for pooled seeds only lowers
   the χ² of three seeds toward what one seed gives, so one seed is the conservative count.
"""

from __future__ import annotations

import json

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import StratifiedTable

ALPHA = 0.05


def sign_test_power(n: int, d: float, delta: float) -> float:
    """Exact McNemar power: sum over the discordant count k of P(k) * P(reject | k)."""
    if not 0 < delta <= d:
        raise ValueError("the difference must lie in (0, discordant share]")
    p1 = (d + delta) / (2 * d)
    power = 0.0
    for k in range(1, n + 1):
        pk = stats.binom.pmf(k, n, d)
        if pk < 1e-12:
            continue
        # the two-sided exact rejection region of Binomial(k, 0.5)
        region = [x for x in range(k + 1) if stats.binomtest(x, k, 0.5).pvalue < ALPHA]
        power += pk * sum(stats.binom.pmf(x, k, p1) for x in region)
    return power


def cell_probabilities(or_: float, p_step: float = 0.5, p_answer: float = 0.5) -> np.ndarray:
    """The 2x2 probabilities with these margins and odds ratio (a: both right ... d: both wrong)."""
    if or_ == 1:
        a = p_step * p_answer
    else:  # solve a (d) / ((p_step - a)(p_answer - a)) = or_ for the cell a, with d = 1 - p_step - p_answer + a
        s = 1 + (or_ - 1) * (p_step + p_answer)
        a = (s - np.sqrt(s * s - 4 * or_ * (or_ - 1) * p_step * p_answer)) / (2 * (or_ - 1))
    b, c = p_step - a, p_answer - a
    return np.array([a, b, c, 1 - a - b - c])


def cmh_power(
    or_: float, margins: tuple[float, float] = (0.5, 0.5), strata: int = 4, per_stratum: int = 40, sims: int = 2000
) -> float:
    rng = np.random.default_rng(0)
    probs = cell_probabilities(or_, *margins)
    hits = 0
    for _ in range(sims):
        tables = [rng.multinomial(per_stratum, probs).reshape(2, 2) + 0.0 for _ in range(strata)]
        tables = [t for t in tables if t.sum(0).min() > 0 and t.sum(1).min() > 0]  # strata that vary
        if tables and StratifiedTable(tables).test_null_odds(correction=False).pvalue < ALPHA:
            hits += 1
    return hits / sims


def main() -> None:
    n = 160
    out = {
        "items": n,
        "alpha": ALPHA,
        "paired_accuracy_difference": [
            {
                "discordant_share": d,
                "difference_points": round(100 * delta),
                "power": round(sign_test_power(n, d, delta), 3),
            }
            for d in (0.2, 0.3)
            for delta in (0.08, 0.10, 0.12, 0.15)
        ],
        "step_answer_association": [
            {"step_rate": m[0], "answer_rate": m[1], "odds_ratio": o, "power": round(cmh_power(o, m), 3)}
            for m in ((0.5, 0.5), (0.8, 0.4))
            for o in (1.5, 2.0, 2.5, 3.0, 4.0)
        ],
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
