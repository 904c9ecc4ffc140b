"""Association between a trace step's correctness and the answer's correctness.

A 2x2 table is [[a, b], [c, d]]: rows = step right / step wrong, columns = answer right / answer
wrong. Distributions come from scipy.stats, the stratified tests and the regression from
statsmodels. docs/scoring.md states every statistic's assumptions; in short:

- `association`: the textbook statistics of one table (Pearson chi2 is the paper's test). They
  treat every output as an independent draw, so they are valid for one seed's outputs on distinct
  items within one stratum, not for tables added up over subsets or seeds;
- `stratified`: the Cochran-Mantel-Haenszel test, Mantel-Haenszel common odds ratio and the
  Breslow-Day test over strata (subset, or subset x seed), with a design-effect correction for
  the same test item appearing in several strata (seeds);
- `regression`: logistic regression of answer correctness on several step indicators with
  covariates, standard errors clustered by test item;
- `ItemBootstrap`: percentile intervals for rates, resampling test items with all their seeds.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import special, stats

Z95 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
MARGINS = ("step_right", "step_wrong", "answer_right", "answer_wrong")
SEPARATED_COEF = 15.0  # |log odds ratio| beyond this after fitting: the MLE is running off to infinity


def _f(x: Any) -> float | None:
    """A JSON-safe float: None for nan and infinities."""
    return None if x is None or not math.isfinite(float(x)) else float(x)


def table_2x2(step, answer) -> list[list[int]]:
    s, y = np.asarray(step, dtype=bool), np.asarray(answer, dtype=bool)
    return [[int(np.sum(s & y)), int(np.sum(s & ~y))], [int(np.sum(~s & y)), int(np.sum(~s & ~y))]]


def wilson(k: float, n: int) -> dict[str, Any]:
    """A proportion with its 95 % Wilson score interval: statsmodels' `proportion_confint(k, n,
    method="wilson")` formula written out (a test holds them equal), because the statsmodels call
    costs a millisecond and a summary asks for thousands."""
    if n == 0:
        return {"p": None, "k": 0, "n": 0, "ci95": [None, None]}
    z2 = Z95 * Z95
    center = (k + z2 / 2) / (n + z2)
    half = Z95 * math.sqrt(k * (n - k) / n + z2 / 4) / (n + z2)
    return {"p": k / n, "k": k, "n": n, "ci95": [center - half, center + half]}


def chi2_sf(x: float, df: int) -> float:
    """P(chi-square with `df` degrees of freedom > x): `scipy.special.chdtrc`, the function
    `scipy.stats.chi2.sf` evaluates, without its per-call argument handling (a test holds them equal)."""
    return float(special.chdtrc(df, x))


@lru_cache(maxsize=4096)
def fisher_p(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p of Fisher's exact test (`scipy.stats.fisher_exact`), kept per table: a rescore
    asks for the same table under both evidence rules and in the tables without flagged outputs."""
    return float(stats.fisher_exact([[a, b], [c, d]]).pvalue)


def association(table: list[list[int]]) -> dict[str, Any]:
    """For one table whose outputs are independent: Pearson chi-square without and with Yates'
    correction (the closed forms of `scipy.stats.chi2_contingency`, p from the chi-square
    distribution with 1 df), Fisher's exact test, phi, the sample odds ratio with its Woolf 95 %
    interval, and P(answer right | step right / wrong) with Wilson intervals. A degenerate table
    (a zero row or column) gets None where a statistic is undefined."""
    (a, b), (c, d) = table
    n = a + b + c + d
    out: dict[str, Any] = {"table": [[a, b], [c, d]], "n": n}
    margins = (a + b, c + d, a + c, b + d)
    if n == 0 or 0 in margins:
        out.update(chi2=None, chi2_p=None, chi2_yates=None, chi2_yates_p=None, phi=None)
    else:
        prod = margins[0] * margins[1] * margins[2] * margins[3]
        chi2 = n * (a * d - b * c) ** 2 / prod
        chi2y = n * max(0.0, abs(a * d - b * c) - n / 2) ** 2 / prod
        out.update(
            chi2=chi2,
            chi2_p=chi2_sf(chi2, 1),
            chi2_yates=chi2y,
            chi2_yates_p=chi2_sf(chi2y, 1),
            phi=(a * d - b * c) / math.sqrt(prod),
        )
    out["fisher_p"] = fisher_p(a, b, c, d) if n else None
    if n and 0 not in (a, b, c, d):
        lor, se = math.log(a * d / (b * c)), math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
        out["odds_ratio"] = a * d / (b * c)
        out["odds_ratio_ci95"] = [math.exp(lor - Z95 * se), math.exp(lor + Z95 * se)]
    else:
        out["odds_ratio"] = (
            None if n == 0 or (a * d == 0 and b * c == 0) else (math.inf if b * c == 0 else (a * d) / (b * c))
        )
        out["odds_ratio_ci95"] = [None, None]
    out["p_answer_given_step_correct"] = wilson(a, a + b)
    out["p_answer_given_step_wrong"] = wilson(c, c + d)
    return out


# -- stratified: Cochran-Mantel-Haenszel, Mantel-Haenszel odds ratio, Breslow-Day -----------------
def _codes(labels) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct labels and each element's index into them."""
    return np.unique(np.asarray(labels), return_inverse=True)


def item_codes(ids) -> np.ndarray:
    """Each output's test item as an integer (the rank of its id among the distinct ids): what the
    stratified tests, the regression and the bootstrap group by, sorted once instead of per test."""
    return _codes(np.asarray(ids))[1]


def design_effect(x: np.ndarray, y: np.ndarray, stratum: np.ndarray, cluster: np.ndarray) -> float:
    """Var(CMH numerator) with test items as clusters over the same variance with every output its
    own cluster, floored at 1. The numerator sum_k (a_k - E a_k) is a sum over outputs of
    u = (x - mean_k x)(y - mean_k y); outputs of one item in several strata (seeds) are correlated,
    so their u are added before squaring. One output per item gives exactly 1; k identical copies
    of a seed give exactly k."""
    if np.bincount(cluster).max() == 1:
        return 1.0
    xm = np.bincount(stratum, weights=x) / np.bincount(stratum)
    ym = np.bincount(stratum, weights=y) / np.bincount(stratum)
    u = (x - xm[stratum]) * (y - ym[stratum])
    indep = float(np.sum(u * u))
    if indep == 0:
        return 1.0
    clustered = float(np.sum(np.bincount(cluster, weights=u) ** 2))
    return max(1.0, clustered / indep)


def _breslow_day(st, tables: np.ndarray) -> tuple[float, int] | None:
    """Breslow-Day statistic and df from statsmodels; its quadratic for the expected cell divides
    by (1 - OR_MH), so at OR_MH = 1 exactly the expected cell is the CMH one (row x column / n)."""
    k = tables.shape[2]
    if k < 2:
        return None
    r = st.oddsratio_pooled
    if not (0 < r < math.inf):
        return None
    if r == 1.0:
        a = tables[0, 0]
        n1, m1, n = tables[0].sum(0), tables[:, 0].sum(0), tables.sum((0, 1))
        e = n1 * m1 / n
        v = 1 / (1 / e + 1 / (m1 - e) + 1 / (n1 - e) + 1 / (n - n1 - m1 + e))
        stat = float(np.sum((a - e) ** 2 / v))
    else:
        stat = float(st.test_equal_odds(adjust=False).statistic)
    return (stat, k - 1) if math.isfinite(stat) else None


def stratified(x, y, strata, clusters) -> dict[str, Any]:
    """The CMH test (no continuity correction), the Mantel-Haenszel common odds ratio with its
    Robins-Breslow-Greenland 95 % interval and the Breslow-Day test of a common odds ratio, from
    statsmodels `StratifiedTable`, over the strata given (one label per output). When an
    informative stratum has an expected cell below 5 (`min_expected`), the chi-square
    approximation is doubtful: with one output per item the exact conditional test
    (`exact_stratified`) is added as `exact` and is the one a verdict rests on.

    A stratum with a zero row or column (the step, or the answer, the same in all its outputs) has
    no information about the association: it adds 0 to the CMH numerator, variance and the MH odds
    ratio, and makes the Breslow-Day statistic undefined; it is left out and listed. When outputs of
    one test item fall in several strata (seeds), the chi-square statistics are divided by the
    design effect (`design_effect`) and the log odds ratio's standard error multiplied by its square
    root (a first-order Rao-Scott correction, as Donald & Donner 1987 do for the MH test on
    clustered data); with one output per item nothing changes."""
    x, y = np.asarray(x, dtype=bool), np.asarray(y, dtype=bool)
    labels, s = _codes(strata)
    k = len(labels)
    cells = np.bincount(s * 4 + 2 * (~x) + (~y), minlength=4 * k).reshape(k, 2, 2)
    margins = np.concatenate([cells.sum(2), cells.sum(1)], axis=1)  # step right, wrong, answer right, wrong
    informative = np.all(margins > 0, axis=1)
    out: dict[str, Any] = {
        "test": "Cochran-Mantel-Haenszel",
        "strata": k,
        "informative_strata": int(informative.sum()),
        "left_out": {str(labels[i]): cells[i].tolist() for i in np.flatnonzero(~informative)},
        "left_out_outputs": int(cells[~informative].sum()),
        "outputs": int(cells[informative].sum()),
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
    }
    if not informative.any():
        out["note"] = "no stratum has both the step and the answer varying"
        return out
    from statsmodels.stats.contingency_tables import StratifiedTable

    keep = informative[s]
    tables = cells[informative].transpose(1, 2, 0).astype(float)
    st = StratifiedTable(tables)
    _, item = _codes(np.asarray(clusters)[keep])
    _, sk = _codes(s[keep])
    deff = design_effect(x[keep].astype(float), y[keep].astype(float), sk, item)
    raw = float(st.test_null_odds(correction=False).statistic)
    out.update(
        chi2=raw / deff,
        p=chi2_sf(raw / deff, 1),
        chi2_unadjusted=raw,
        design_effect=deff,
        estimable=True,
        items=int(item.max()) + 1,
        margins=dict(zip(MARGINS, (int(v) for v in margins[informative].sum(0)))),
    )
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero sum of a*d/n or b*c/n: OR 0 or infinite
        r = float(st.oddsratio_pooled)
        out["odds_ratio"] = r if math.isfinite(r) else math.inf
        if 0 < r < math.inf:
            half = Z95 * float(st.logodds_pooled_se) * math.sqrt(deff)
            out["odds_ratio_ci95"] = [math.exp(math.log(r) - half), math.exp(math.log(r) + half)]
        else:
            out["note"] = (
                f"every informative stratum has {'b*c' if r != 0 else 'a*d'} = 0: the odds ratio is {r}, without an interval"
            )
        bd = _breslow_day(st, tables)
    if bd is not None:
        stat, df = bd
        out["breslow_day"] = {"chi2": stat / deff, "df": df, "p": chi2_sf(stat / deff, df)}
    small = cells[informative]
    out["min_expected"] = min_expected(small)
    # the exact test assumes independent outputs: only with one output per item (a design effect of
    # 1 can also come from clustered outputs whose clustering happens not to inflate the variance)
    if out["min_expected"] < SMALL_EXPECTED and np.bincount(item).max() == 1:
        out["exact"] = exact_stratified(small)
    return out


# -- the exact conditional test of a common odds ratio ---------------------------------------------
SMALL_EXPECTED = 5.0  # an expected cell below this in an informative stratum: the chi-square approximation is doubtful


def _log_null_density(tables: np.ndarray) -> tuple[int, np.ndarray]:
    """The null distribution of S = sum of the (1,1) cells given every stratum's margins: the
    convolution of the strata's hypergeometric densities. (lowest S, log density over lo..hi)."""
    lo, dens = 0, np.ones(1)
    for t in tables:
        n1, n2, m1 = int(t[0].sum()), int(t[1].sum()), int(t[:, 0].sum())
        a_lo, a_hi = max(0, m1 - n2), min(n1, m1)
        pmf = stats.hypergeom.pmf(np.arange(a_lo, a_hi + 1), n1 + n2, n1, m1)
        lo, dens = lo + a_lo, np.convolve(dens, pmf)
    with np.errstate(divide="ignore"):
        return lo, np.log(dens)


def exact_stratified(tables) -> dict[str, Any]:
    """The exact conditional test of a common odds ratio over 2x2 strata (`tables`: k x 2 x 2,
    [[a, b], [c, d]] each) as R's `mantelhaen.test(exact = TRUE)` computes it: S = sum of the a
    cells has, given all margins, the distribution of a sum of independent noncentral
    hypergeometrics with the common odds ratio psi; the two-sided p sums the null probabilities not
    above the observed one (relative tolerance 1e-7); the estimate is the conditional maximum
    likelihood one (E_psi[S] = S observed) and the 95 % interval inverts the two one-sided tests.
    It assumes independent outputs (one per test item)."""
    from scipy.optimize import brentq

    tables = np.asarray(tables, dtype=int).reshape(-1, 2, 2)
    lo, logd = _log_null_density(tables)
    support = np.arange(lo, lo + len(logd))
    x = int(tables[:, 0, 0].sum())
    hi = int(support[-1])

    def density(log_psi: float) -> np.ndarray:
        d = logd + log_psi * support
        d = np.exp(d - d[np.isfinite(d)].max())
        return d / d.sum()

    null = density(0.0)
    p = float(min(1.0, null[null <= null[x - lo] * (1 + 1e-7)].sum()))

    def root(f) -> float:
        """The log psi where f crosses zero (f increasing in log psi)."""
        a, b = -1.0, 1.0
        while f(a) > 0:
            a *= 2
        while f(b) < 0:
            b *= 2
        return brentq(f, a, b, xtol=1e-10)

    if x == lo:
        mle, low = 0.0, 0.0
    else:
        mle = math.exp(root(lambda t: float(density(t) @ support) - x))
        low = math.exp(root(lambda t: float(density(t)[support >= x].sum()) - 0.025))
    if x == hi:
        mle, high = math.inf, math.inf
    else:
        high = math.exp(root(lambda t: 0.025 - float(density(t)[support <= x].sum())))
    return {
        "test": "exact conditional (R mantelhaen.test exact=TRUE)",
        "p": p,
        "odds_ratio": mle,
        "odds_ratio_ci95": [low, high],
    }


def min_expected(tables) -> float:
    """The smallest expected cell (row total x column total / n) over the strata."""
    t = np.asarray(tables, dtype=float).reshape(-1, 2, 2)
    rows, cols, n = t.sum(2), t.sum(1), t.sum((1, 2))
    return float((rows[:, :, None] * cols[:, None, :] / n[:, None, None]).min())


# -- logistic regression with item-clustered standard errors -------------------------------------
def _dummies(labels) -> tuple[np.ndarray, list[str]]:
    names, codes = _codes(labels)
    return (codes[:, None] == np.arange(1, len(names))[None, :]).astype(float), [str(n) for n in names[1:]]


def regression(y, terms: dict[str, Any], factors: dict[str, Any], clusters) -> dict[str, Any]:
    """Logistic regression (statsmodels GLM, Binomial, logit) of answer correctness on each step
    indicator in `terms`, with every factor in `factors` (subset, seed) as fixed-effect dummies, and
    standard errors clustered by test item (`cov_type='cluster'`). Each term's odds ratio is its
    association with the answer holding the other terms and the factors fixed.

    Not estimable (reported, never raised): a term that is constant, that is collinear with the
    covariates or earlier terms, or whose outcome is constant on one side (quasi-separation: the
    maximum-likelihood estimate is infinite); factor levels whose outputs all have the same answer
    are dropped first (their dummy would be infinite and they carry no information on the terms)."""
    y = np.asarray(y, dtype=float)
    keep = np.ones(len(y), dtype=bool)
    dropped: dict[str, list[str]] = {}
    for name, labels in factors.items():
        labels = np.asarray(labels)
        for level in np.unique(labels):
            m = (labels == level) & keep
            if m.any() and np.ptp(y[m]) == 0:
                keep &= ~m
                dropped.setdefault(name, []).append(str(level))
    out: dict[str, Any] = {
        "model": "logistic regression (GLM binomial, logit link), item-clustered standard errors",
        "n": int(keep.sum()),
        "clusters": 0,
        "covariates": list(factors),
        "dropped_levels": dropped,
        "terms": {},
        "estimable": False,
    }
    yk = y[keep]
    design = [np.ones(int(keep.sum()))]
    for labels in factors.values():
        d, _ = _dummies(np.asarray(labels)[keep])
        design += [d[:, j] for j in range(d.shape[1])]
    if keep.sum() == 0 or np.ptp(yk) == 0:
        note: str | None = "no outputs" if len(y) == 0 else "every output has the same answer correctness"
        out["terms"] = {name: {"estimable": False, "note": note} for name in terms}
        return out
    fitted: list[str] = []
    rank = np.linalg.matrix_rank(np.column_stack(design))
    for name, values in terms.items():
        x = np.asarray(values, dtype=float)[keep]
        note = None
        if np.ptp(x) == 0:
            note = f"the step is {'right' if x[0] else 'wrong'} in every output"
        elif np.ptp(yk[x == 1]) == 0 or np.ptp(yk[x == 0]) == 0:
            side = 1 if np.ptp(yk[x == 1]) == 0 else 0
            answer = "right" if yk[x == side][0] else "wrong"
            note = (
                f"quasi-separation: every output with the step {'right' if side else 'wrong'} "
                f"({int(np.sum(x == side))}) has the answer {answer}"
            )
        else:
            r = np.linalg.matrix_rank(np.column_stack([*design, x]))
            if r == rank:
                note = "collinear with the covariates or the other steps"
            else:
                rank = r
                design.append(x)
                fitted.append(name)
        out["terms"][name] = {"estimable": False, "note": note} if note else {}
    if not fitted:
        return out
    from statsmodels.genmod.families import Binomial
    from statsmodels.genmod.generalized_linear_model import GLM
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    _, item = _codes(np.asarray(clusters)[keep])
    X = np.column_stack(design)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = GLM(yk, X, family=Binomial()).fit(cov_type="cluster", cov_kwds={"groups": item})
    separated = any(issubclass(w.category, PerfectSeparationWarning) for w in caught)
    out.update(clusters=int(item.max()) + 1, estimable=True, converged=bool(res.converged))
    params, bse, pvalues = np.asarray(res.params), np.asarray(res.bse), np.asarray(res.pvalues)
    first = X.shape[1] - len(fitted)
    for j, name in enumerate(fitted, start=first):
        b, se = float(params[j]), float(bse[j])
        if separated or not res.converged or not math.isfinite(se) or abs(b) > SEPARATED_COEF:
            out["terms"][name] = {"estimable": False, "note": "the fit ran off to infinity (separation)"}
            continue
        out["terms"][name] = {
            "estimable": True,
            "coef": b,
            "se": se,
            "p": _f(pvalues[j]),
            "odds_ratio": math.exp(b),
            "odds_ratio_ci95": [math.exp(b - Z95 * se), math.exp(b + Z95 * se)],
        }
    return out


# -- bootstrap over test items --------------------------------------------------------------------
_CACHED_CELLS = 8_000_000  # resample-count matrices up to this size are kept for the next call


def _resample_counts(k: int, resamples: int, seed: int):
    """(chunk x k) matrices of how often each of k items is drawn, `resamples` rows in all."""
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // max(k, 1))
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        draws = rng.integers(0, k, size=(b, k)) + (np.arange(b) * k)[:, None]
        yield np.bincount(draws.ravel(), minlength=b * k).reshape(b, k).astype(np.float32)


@lru_cache(maxsize=8)
def _cached_counts(k: int, resamples: int, seed: int) -> tuple:
    return tuple(_resample_counts(k, resamples, seed))


class ItemBootstrap:
    """Percentile 95 % intervals for ratios of sums (rates, conditional rates), resampling test
    items with replacement; every output of a resampled item (all its seeds) comes along. Seeded:
    the same number of items gives the same resamples. Vectorised: (resamples x items) count
    matrices multiply the per-item sums of every ratio at once."""

    def __init__(self, items, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED):
        self.keys, self.codes = _codes(items)
        self.resamples, self.seed = resamples, seed

    def intervals(self, ratios: dict[str, tuple[Any, Any]]) -> dict[str, dict[str, Any]]:
        """For each name: numerator and denominator per output -> the ratio of their sums, its
        interval and the method. A ratio whose resamples do not vary (every item scores the same)
        gets the Wilson interval of its value with the number of items as n."""
        names = list(ratios)
        k = len(self.keys)
        # one column per distinct per-output array (many ratios share a denominator)
        columns: dict[bytes, int] = {}
        arrays: list[np.ndarray] = []
        index: list[list[int]] = []
        for n in names:
            pair = []
            for values in ratios[n]:
                v = np.asarray(values, dtype=float)
                key = v.tobytes()
                if key not in columns:
                    columns[key] = len(arrays)
                    arrays.append(np.bincount(self.codes, weights=v, minlength=k))
                pair.append(columns[key])
            index.append(pair)
        per_item = np.stack(arrays, 1)
        num, den = per_item[:, [i for i, _ in index]], per_item[:, [j for _, j in index]]
        counts = (
            _cached_counts(k, self.resamples, self.seed)
            if k * self.resamples <= _CACHED_CELLS
            else _resample_counts(k, self.resamples, self.seed)
        )
        sums = np.concatenate([w @ per_item.astype(np.float32) for w in counts])
        with np.errstate(divide="ignore", invalid="ignore"):
            boot = sums[:, [i for i, _ in index]] / sums[:, [j for _, j in index]]
        out: dict[str, dict[str, Any]] = {}
        for j, name in enumerate(names):
            total = den[:, j].sum()
            if total == 0:
                out[name] = {"p": None, "ci95": [None, None], "method": None, "items": 0}
                continue
            p = float(num[:, j].sum() / total)
            items = int(np.count_nonzero(den[:, j]))
            col = boot[:, j][np.isfinite(boot[:, j])]
            if col.size == 0 or np.ptp(col) < 1e-6:
                out[name] = {"p": p, "ci95": wilson(p * items, items)["ci95"], "method": "wilson", "items": items}
            else:
                lo, hi = np.percentile(col, [2.5, 97.5])
                out[name] = {"p": p, "ci95": [float(lo), float(hi)], "method": "bootstrap", "items": items}
        return out


# -- paired comparison of two conditions on the same items -----------------------------------------
ALPHA_PAIRED = 0.05


def paired_comparison(
    a: dict[str, list[bool]], b: dict[str, list[bool]], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> dict[str, Any]:
    """Condition A against condition B on the test items both have (`a`, `b`: item id -> the answer
    correctness of each seed's output on it). The unit is the item: its seeds are averaged
    (p_A(i), p_B(i)), never counted as independent outputs.

    - `difference`: mean_i p_A(i) - mean_i p_B(i), with a 95 % paired bootstrap interval (items
      resampled with replacement, the same draw for both conditions, so the pairing is kept);
    - `p`: the exact two-sided sign test of the per-item differences d_i = p_A(i) - p_B(i) (items
      with d_i = 0 carry no information): under "no difference" each nonzero d_i is as likely
      positive as negative (`scipy.stats.binomtest`). With one seed per condition this is exactly
      McNemar's exact test on the discordant pairs. It tests the direction per item, not the size.
    Assumes the items are independent draws (the seeds of an item are one cluster, which is why
    they are averaged)."""
    items = sorted(set(a) & set(b))
    if not items:
        return {"items": 0, "accuracy": [None, None], "difference": None, "ci95": [None, None], "p": None}
    pa = np.array([np.mean(a[i]) for i in items])
    pb = np.array([np.mean(b[i]) for i in items])
    d = pa - pb
    counts = (
        _cached_counts(len(items), resamples, seed)
        if len(items) * resamples <= _CACHED_CELLS
        else _resample_counts(len(items), resamples, seed)
    )
    boot = np.concatenate([w @ d.astype(np.float32) for w in counts]) / len(items)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    better, worse = int((d > 0).sum()), int((d < 0).sum())
    p = float(stats.binomtest(better, better + worse, 0.5).pvalue) if better + worse else 1.0
    return {
        "items": len(items),
        "accuracy": [float(pa.mean()), float(pb.mean())],
        "difference": float(d.mean()),
        "ci95": [float(lo), float(hi)],
        "a_better": better,
        "b_better": worse,
        "p": p,
        "test": "exact sign test of the per-item differences (seeds averaged within an item; McNemar's exact test "
        "with one seed)",
        "interval": "paired bootstrap over items",
    }
