"""The study's statistics — `tracekd humanstudy analyze` (plots, words and the page: report.py).

Assumptions, stated: a participant's pages are a cluster (intervals come from a bootstrap over
participants, the models have a participant random intercept), items are a second, crossed
cluster (an item random intercept); Likert answers are ordinal (the ordinal model and the rank
tests check what the linear mixed model on the 1-5 scores says). Exclusions are participant
level, applied in this order, each counted: incomplete sessions, a failed attention check, a
median time per item page under the study's `min_seconds_per_page`.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tracekd.humanstudy.spec import (
    ATTENTION_PASS,
    ATTENTION_QUESTION,
    INTERPRETABILITY,
    LIKERT_QUESTIONS,
    LOAD,
    VERIFY,
    WRONG_STEP,
    Study,
)

SCALES = {"interpretability": list(INTERPRETABILITY), "load": list(LOAD)}


def exclusions(long: pd.DataFrame, min_seconds: float) -> tuple[set[int], list[dict[str, Any]]]:
    """(participants kept, the rules with their counts)."""
    people = sorted(long["participant"].unique())
    left = set(people)
    rules = []

    def apply(name: str, rule: str, out: set[int]) -> None:
        hit = left & out
        left.difference_update(hit)
        rules.append({"name": name, "rule": rule, "excluded": len(hit)})

    done = set(long.loc[long["completed"] == 1, "participant"])
    apply("incomplete", "the session did not reach the completion page", set(people) - done)
    att = long[(long["attention"] == 1) & (long["question"] == ATTENTION_QUESTION)]
    failed = set(att.loc[att["value"].astype(str) != str(ATTENTION_PASS), "participant"])
    apply("attention", f"an attention check answered other than {ATTENTION_PASS} on {ATTENTION_QUESTION}", failed)
    items = long[(long["kind"] == "item") & (long["attention"] == 0)].drop_duplicates(["participant", "page"])
    median = items.groupby("participant")["seconds"].median()
    apply(
        "too fast",
        f"median time per item page under {min_seconds:g} s (implausibly fast)",
        set(median[median < min_seconds].index),
    )
    return left, rules


def item_pages(long: pd.DataFrame, kept: set[int]) -> pd.DataFrame:
    """One row per kept participant × item page: the answers as columns, the scale scores."""
    df = long[(long["kind"] == "item") & (long["attention"] == 0) & long["participant"].isin(kept)]
    keys = ["participant", "page", "item", "type", "wrong", "true_step", "seconds"]
    wide = df.pivot_table(index=keys, columns="question", values="value", aggfunc="first").reset_index()
    wide.columns.name = None
    for q in LIKERT_QUESTIONS:
        wide[q] = pd.to_numeric(wide[q])
    for name, qs in SCALES.items():
        wide[name] = wide[qs].mean(axis=1)
    wide["wrong"] = wide["wrong"].astype(int)
    return wide


# -- bootstrap over participants ------------------------------------------------------------------
def _weights(participants: np.ndarray, boot: int, rng: np.random.Generator) -> np.ndarray:
    """B × P resample counts: each bootstrap draws P participants with replacement."""
    p = len(participants)
    return rng.multinomial(p, np.full(p, 1 / p), size=boot)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Median of `values` repeated by each row of `weights` (B × n integer counts)."""
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[:, order]
    cum = np.cumsum(w, axis=1)
    total = cum[:, -1]
    lo = np.argmax(cum >= ((total + 1) // 2)[:, None], axis=1)
    hi = np.argmax(cum >= (total // 2 + 1)[:, None], axis=1)
    return (v[lo] + v[hi]) / 2


def boot_summary(df: pd.DataFrame, column: str, groups: list[str], by: str, boot: int, seed: int) -> dict:
    """Per group of `by`: n pages, mean and median of `column` with percentile 95 % intervals
    from one bootstrap over participants (the same resamples for every group)."""
    people = np.array(sorted(df["participant"].unique()))
    index = {p: i for i, p in enumerate(people)}
    w = _weights(people, boot, np.random.default_rng(seed))
    out = {}
    for g in groups:
        sub = df[df[by] == g]
        if sub.empty:
            continue
        vals = sub[column].to_numpy(float)
        owner = sub["participant"].map(index).to_numpy()
        pw = w[:, owner]
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (pw * vals).sum(axis=1) / pw.sum(axis=1)
        ok = pw.sum(axis=1) > 0
        medians = _weighted_median(vals, pw[ok])
        out[g] = {
            "pages": len(vals),
            "participants": int(sub["participant"].nunique()),
            "mean": float(vals.mean()),
            "mean_ci": [float(x) for x in np.nanpercentile(means, [2.5, 97.5])],
            "median": float(np.median(vals)),
            "median_ci": [float(x) for x in np.percentile(medians, [2.5, 97.5])],
        }
    return out


# -- models ----------------------------------------------------------------------------------------
def mixed_model(df: pd.DataFrame, column: str, reference: str) -> dict:
    """Linear mixed model: column ~ type (treatment contrasts against `reference`), crossed random
    intercepts of participant and item (variance components over one group, statsmodels MixedLM, REML)."""
    import statsmodels.formula.api as smf

    data = df[["participant", "item", "type", column]].rename(columns={column: "y"}).copy()
    data["one"] = 1
    formula = f"y ~ C(type, Treatment({reference!r}))"
    vc = {"participant": "0 + C(participant)", "item": "0 + C(item)"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.mixedlm(formula, data, groups="one", vc_formula=vc, re_formula="0").fit(reml=True, method="lbfgs")
    ci = fit.conf_int()
    effects = {}
    for name in fit.fe_params.index:
        if name.startswith("C(type"):
            t = name.split("[T.")[1].rstrip("]")
            effects[t] = {
                "difference": float(fit.fe_params[name]),
                "ci": [float(ci.loc[name, 0]), float(ci.loc[name, 1])],
                "p": float(fit.pvalues[name]),
            }
    vcomp = dict(zip(fit.model.exog_vc.names, (float(x) for x in fit.vcomp)))
    return {
        "reference": reference,
        "effects": effects,
        "variance": {**vcomp, "residual": float(fit.scale)},
        "converged": bool(fit.converged),
    }


def ordinal_model(df: pd.DataFrame, column: str, reference: str, types: list[str]) -> dict:
    """Proportional-odds (logit) model of one Likert item on the type (statsmodels OrderedModel):
    the check that the mixed model's direction holds when the answers are read as ordinal. It has
    no random effects: its p-values treat pages as independent (read them as a check only)."""
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    others = [t for t in types if t != reference and t in set(df["type"])]
    exog = pd.DataFrame({t: (df["type"] == t).astype(float) for t in others}, index=df.index)
    y = pd.Categorical(df[column].astype(int), categories=sorted(df[column].astype(int).unique()), ordered=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = OrderedModel(y, exog, distr="logit").fit(method="bfgs", disp=False, maxiter=500)
    return {
        "item": column,
        "reference": reference,
        "log_odds": {t: {"estimate": float(fit.params[t]), "p": float(fit.pvalues[t])} for t in others},
    }


def rank_tests(df: pd.DataFrame, column: str, types: list[str], design: str) -> dict:
    """Participants' mean scores per type. Within: Friedman over participants who saw every type,
    pairwise Wilcoxon signed-rank; between: Kruskal-Wallis, pairwise Mann-Whitney U. Holm over the pairs."""
    from statsmodels.stats.multitest import multipletests

    # rounded: means of Likert answers that are equal tie (float noise would break ties in the ranks)
    means = df.groupby(["participant", "type"])[column].mean().round(10).unstack("type")
    present = [t for t in types if t in means.columns]
    pairs = list(itertools.combinations(present, 2))
    if design == "within":
        full = means[present].dropna()
        omnibus = stats.friedmanchisquare(*(full[t] for t in present)) if len(present) >= 3 else None
        raw = [stats.wilcoxon(full[a], full[b]) for a, b in pairs]
        test, n = "Friedman", len(full)
    else:
        cols = {t: means[t].dropna() for t in present}
        omnibus = stats.kruskal(*cols.values()) if len(present) >= 2 else None
        raw = [stats.mannwhitneyu(cols[a], cols[b]) for a, b in pairs]
        test, n = "Kruskal-Wallis", int(means.notna().any(axis=1).sum())
    holm = multipletests([r.pvalue for r in raw], method="holm")[1] if raw else []
    return {
        "test": test,
        "participants": n,
        "statistic": None if omnibus is None else float(omnibus.statistic),
        "p": None if omnibus is None else float(omnibus.pvalue),
        "pairs": [
            {"a": a, "b": b, "statistic": float(r.statistic), "p": float(r.pvalue), "p_holm": float(ph)}
            for (a, b), r, ph in zip(pairs, raw, holm)
        ],
        "pair_test": "Wilcoxon signed-rank" if design == "within" else "Mann-Whitney U",
    }


# -- reliability -----------------------------------------------------------------------------------
def cronbach_alpha(items: np.ndarray) -> float:
    """Cronbach's α of an n × k matrix (rows: responses, columns: items of one scale)."""
    k = items.shape[1]
    return float(k / (k - 1) * (1 - items.var(axis=0, ddof=1).sum() / items.sum(axis=1).var(ddof=1)))


def krippendorff_ordinal(units: dict[Any, list[int]]) -> float:
    """Krippendorff's α, ordinal metric, from each unit's values (one per rater; units with one
    value are not pairable and left out)."""
    values = sorted({v for vs in units.values() for v in vs})
    pos = {v: i for i, v in enumerate(values)}
    o = np.zeros((len(values), len(values)))
    for vs in units.values():
        m = len(vs)
        if m < 2:
            continue
        counts = np.bincount([pos[v] for v in vs], minlength=len(values)).astype(float)
        o += (np.outer(counts, counts) - np.diag(counts)) / (m - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    cum = np.concatenate([[0], np.cumsum(n_c)])
    i, j = np.meshgrid(range(len(values)), range(len(values)), indexing="ij")
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    delta = (cum[hi + 1] - cum[lo] - (n_c[i] + n_c[j]) / 2) ** 2
    expected = (np.outer(n_c, n_c) * delta).sum()
    return float(1 - (n - 1) * (o * delta).sum() / expected) if expected else float("nan")


# -- verification ----------------------------------------------------------------------------------
def d_prime(hits: int, n_wrong: int, false_alarms: int, n_correct: int) -> float:
    """Sensitivity d′ = Φ⁻¹(hit rate) − Φ⁻¹(false-alarm rate), the log-linear correction
    ((count + 0.5) / (n + 1), Hautus 1995) keeping both rates away from 0 and 1."""
    return float(stats.norm.ppf((hits + 0.5) / (n_wrong + 1)) - stats.norm.ppf((false_alarms + 0.5) / (n_correct + 1)))


def verification(df: pd.DataFrame, types: list[str], boot: int, seed: int) -> dict:
    """Per type: accuracy ("no" on a wrong trace, "yes" on a correct one; "unsure" counts as not
    right), hit and false-alarm rates, d′, the wrong step named among hits, seconds per page; the
    accuracy's and median time's intervals from the bootstrap over participants."""
    d = df.copy()
    d["said_no"] = (d[VERIFY] == "no").astype(int)
    d["right"] = np.where(d["wrong"] == 1, d[VERIFY] == "no", d[VERIFY] == "yes").astype(float)
    acc = boot_summary(d, "right", types, "type", boot, seed)
    secs = boot_summary(d, "seconds", types, "type", boot, seed)
    out = {}
    for t in types:
        sub = d[d["type"] == t]
        if sub.empty:
            continue
        wrong, correct = sub[sub["wrong"] == 1], sub[sub["wrong"] == 0]
        hits, fa = int(wrong["said_no"].sum()), int(correct["said_no"].sum())
        named = wrong[wrong["said_no"] == 1]
        step_right = (pd.to_numeric(named[WRONG_STEP], errors="coerce") == pd.to_numeric(named["true_step"])).sum()
        out[t] = {
            "pages": len(sub),
            "wrong_pages": len(wrong),
            "accuracy": acc[t]["mean"],
            "accuracy_ci": acc[t]["mean_ci"],
            "hit_rate": hits / len(wrong) if len(wrong) else None,
            "false_alarm_rate": fa / len(correct) if len(correct) else None,
            "d_prime": d_prime(hits, len(wrong), fa, len(correct)),
            "step_named": float(step_right / hits) if hits else None,
            "unsure": float((sub[VERIFY] == "unsure").mean()),
            "median_seconds": secs[t]["median"],
            "median_seconds_ci": secs[t]["median_ci"],
        }
    return out


def analyze(study: Study, records: list[dict[str, Any]], boot: int = 2000, seed: int = 0) -> dict:
    """All the statistics of a study's exported rows (export.rows)."""
    long = pd.DataFrame(records)
    types = list(study.spec.types)
    result: dict[str, Any] = {"study": study.spec.name, "design": study.spec.design, "types": types}
    if long.empty:
        return {**result, "participants": 0, "exclusions": [], "kept": 0}
    long["seconds"] = pd.to_numeric(long["seconds"], errors="coerce")
    kept, rules = exclusions(long, study.spec.min_seconds_per_page)
    result.update(participants=int(long["participant"].nunique()), exclusions=rules, kept=len(kept))
    pages = item_pages(long, kept)
    result["pages"] = len(pages)
    if pages.empty or pages["participant"].nunique() < 3:
        return result
    result["scales"] = {}
    for name, qs in SCALES.items():
        block: dict[str, Any] = {
            "summary": boot_summary(pages, name, types, "type", boot, seed),
            "items": {q: boot_summary(pages, q, types, "type", boot, seed) for q in qs},
            "cronbach_alpha": cronbach_alpha(pages[qs].to_numpy(float)),
            "krippendorff_alpha": krippendorff_ordinal(
                {k: list(g[qs[0]].astype(int)) for k, g in pages.groupby(["item", "type"])}
            ),
            "krippendorff_item": qs[0],
        }
        if len(set(pages["type"])) > 1:
            block["mixed_model"] = mixed_model(pages, name, types[0])
            block["ordinal_model"] = ordinal_model(pages, qs[0], types[0], types)
            block["rank_tests"] = rank_tests(pages, name, types, study.spec.design)
        result["scales"][name] = block
    result["verification"] = verification(pages, types, boot, seed)
    result["likert_counts"] = {
        q: {t: [int(((pages["type"] == t) & (pages[q] == v)).sum()) for v in range(1, 6)] for t in types}
        for q in LIKERT_QUESTIONS
    }
    return result
