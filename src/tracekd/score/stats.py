"""Association between a trace step's correctness and the answer's correctness.

All distributions come from scipy.stats. A 2x2 table is [[a, b], [c, d]]:
rows = step correct / step wrong, columns = answer correct / answer wrong.
"""

from __future__ import annotations

import math
from statistics import mean, stdev
from typing import Any

from scipy import stats
from scipy.stats.contingency import odds_ratio

Z95 = 1.959963984540054


def table_2x2(step: list[bool], answer: list[bool]) -> list[list[int]]:
    a = sum(s and x for s, x in zip(step, answer))
    b = sum(s and not x for s, x in zip(step, answer))
    c = sum((not s) and x for s, x in zip(step, answer))
    d = sum((not s) and (not x) for s, x in zip(step, answer))
    return [[a, b], [c, d]]


def _wilson(k: int, n: int) -> dict[str, Any]:
    if n == 0:
        return {"p": None, "k": 0, "n": 0, "ci95": [None, None]}
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return {"p": k / n, "k": k, "n": n, "ci95": [float(ci.low), float(ci.high)]}


def association(table: list[list[int]]) -> dict[str, Any]:
    """Chi-square (with and without Yates), Fisher's exact test, phi, odds ratio with 95% CI, and
    P(answer correct | step correct / wrong) with Wilson intervals. Degenerate tables (a zero row
    or column) get None where a statistic is undefined."""
    (a, b), (c, d) = table
    n = a + b + c + d
    out: dict[str, Any] = {"table": [[a, b], [c, d]], "n": n}
    margins = (a + b, c + d, a + c, b + d)
    degenerate = n == 0 or 0 in margins
    if degenerate:
        out.update(chi2=None, chi2_p=None, chi2_yates=None, chi2_yates_p=None, phi=None)
    else:
        chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
        chi2y, py, _, _ = stats.chi2_contingency(table, correction=True)
        out.update(chi2=float(chi2), chi2_p=float(p), chi2_yates=float(chi2y), chi2_yates_p=float(py),
                   phi=(a * d - b * c) / math.sqrt(margins[0] * margins[1] * margins[2] * margins[3]))
    out["fisher_p"] = float(stats.fisher_exact(table).pvalue) if n else None
    if n and 0 not in (a, b, c, d):
        res = odds_ratio(table, kind="sample")
        ci = res.confidence_interval(confidence_level=0.95)
        out["odds_ratio"] = float(res.statistic)
        out["odds_ratio_ci95"] = [float(ci.low), float(ci.high)]
    else:
        out["odds_ratio"] = None if n == 0 or (a * d == 0 and b * c == 0) else (math.inf if b * c == 0 else (a * d) / (b * c))
        out["odds_ratio_ci95"] = [None, None]
    out["p_answer_given_step_correct"] = _wilson(a, a + b)
    out["p_answer_given_step_wrong"] = _wilson(c, c + d)
    return out


def reading(assoc: dict[str, Any], step: str) -> str:
    """One line a researcher can paste."""
    pc, pw = assoc["p_answer_given_step_correct"]["p"], assoc["p_answer_given_step_wrong"]["p"]
    if pc is None or pw is None:
        return f"{step}: not estimable (every trace had the {step} step {'right' if pw is None else 'wrong'})."
    p = assoc["fisher_p"]
    phi = assoc["phi"]
    strength = "no" if phi is None or abs(phi) < 0.1 else "a weak" if abs(phi) < 0.3 else "a moderate" if abs(phi) < 0.5 else "a strong"
    sig = "significant" if p is not None and p < 0.05 else "not significant"
    return (f"{step}: P(answer right | {step} right) = {pc:.2f} vs {pw:.2f} when wrong; "
            f"phi = {phi if phi is None else f'{phi:.2f}'} ({strength} association), Fisher p = {p:.3g} ({sig}).")


def aggregate_seeds(per_seed: list[dict[str, float]]) -> dict[str, dict[str, float | None]]:
    """Mean and standard deviation of each rate over seeds."""
    keys = sorted({k for r in per_seed for k in r})
    out = {}
    for k in keys:
        vals = [r[k] for r in per_seed if r.get(k) is not None]
        out[k] = {"mean": mean(vals) if vals else None, "sd": stdev(vals) if len(vals) > 1 else 0.0 if vals else None, "n": len(vals)}
    return out


def pooled(tables: list[list[list[int]]]) -> list[list[int]]:
    return [[sum(t[i][j] for t in tables) for j in range(2)] for i in range(2)]
