"""The measures of `tracekd intervene`: pure functions over its rows (`interventions.jsonl`, one per
item x intervention, for one or more seeds).

Per intervention: answer accuracy; the change rate against the model's own answer, split into
changes *to* a right answer (own wrong, now right) and *away from* one (own right, now wrong), as
Bentham et al. (2024) ask, since a change rate alone tracks accuracy; and accuracy minus the
`no_trace` accuracy (paired on item x seed). Per trace step (label, evidence, the whole trace):
the paired effect, accuracy under the gold step minus under the wrong one, with an exact McNemar
test per subset and a stratified test over subsets. The early-answering curve (Lanham et al.
2023): accuracy, and agreement with the model's own final answer, against the share of the
trace kept (truncations; the whole trace is the model's own output), with the area under each.

Every interval is a 95 % percentile bootstrap over test items that keeps all seeds of an item
together (`stats.ItemBootstrap`). The McNemar tests count items, not outputs: an item is
discordant in favour of the gold step when its accuracy over seeds is higher under the gold step
than under the wrong one (with one seed: the textbook exact McNemar test). The stratified test
pools the discordant items of all subsets: for matched pairs the Cochran-Mantel-Haenszel test
stratified by pair is McNemar's, and subsets add strata without changing it (exact binomial on the
pooled discordant counts). It assumes the items are independent; seeds of an item are one item.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from tracekd.score.findings import ALPHA
from tracekd.score.metrics import pct
from tracekd.score.normalize import normalize_answer
from tracekd.score.stats import ItemBootstrap
from tracekd.traces.interventions import BASELINE, REGISTRY

#: step -> (intervention with the gold step, intervention with the wrong step); the other step is
#: the model's own in both (for `trace` both steps change)
STEP_PAIRS = {
    "label": ("gold_label", "wrong_label"),
    "evidence": ("gold_evidence", "wrong_evidence"),
    "trace": ("gold", "wrong_both"),
}


def same_answer(a: list[str] | None, b: list[str] | None) -> bool:
    """Two parsed answer lists say the same (normalised, as sets); no answer equals only no answer."""
    if a is None or b is None:
        return a is None and b is None
    return {normalize_answer(x) for x in a} == {normalize_answer(x) for x in b}


def _keyed(rows_by_seed: dict[Any, list[dict[str, Any]]]) -> dict[str, dict[tuple, dict[str, Any]]]:
    """intervention -> (item id, seed) -> row."""
    out: dict[str, dict[tuple, dict[str, Any]]] = defaultdict(dict)
    for seed, rows in rows_by_seed.items():
        for r in rows:
            out[r["intervention"]][(r["id"], seed)] = r
    order = {name: k for k, name in enumerate(REGISTRY)}  # the registry's order (the report's)
    return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))


def _shares(keys: list[tuple], columns: dict[str, tuple[Any, Any]]) -> dict[str, dict[str, Any]]:
    return ItemBootstrap([k[0] for k in keys]).intervals(columns)


def paired_difference(keys: list[tuple], x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """mean(x - y) over paired outputs, its item-bootstrap interval; an interval that cannot vary
    (every item the same difference) is that value."""
    d = _shares(keys, {"d": (x.astype(float) - y.astype(float), np.ones(len(keys)))})["d"]
    if d["method"] == "wilson":
        d = {**d, "ci95": [d["p"], d["p"]], "method": "constant"}
    return d


def mcnemar(x: np.ndarray, y: np.ndarray, items: list[str]) -> dict[str, Any]:
    """Exact McNemar over items: b items better under x, c better under y (means over seeds)."""
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    diff: dict[str, list[float]] = defaultdict(list)
    for item, a, b in zip(items, x, y, strict=True):
        diff[item].append(float(a) - float(b))
    means = [np.mean(v) for v in diff.values()]
    b, c = sum(m > 0 for m in means), sum(m < 0 for m in means)
    p = float(sm_mcnemar([[0, b], [c, 0]], exact=True).pvalue) if b + c else None
    return {"better_with_gold": int(b), "better_with_wrong": int(c), "items": len(means), "p": p}


def _intervention(keys, rows, baseline: dict[tuple, dict] | None) -> dict[str, Any]:
    correct = np.array([r["answer_correct"] for r in rows], bool)
    own = np.array([r["own_correct"] for r in rows], bool)
    changed = np.array([r["changed"] for r in rows], bool)
    one = np.ones(len(rows))
    out: dict[str, Any] = {"outputs": len(rows), "items": len({k[0] for k in keys})}
    out.update(
        _shares(
            keys,
            {
                "accuracy": (correct, one),
                "changed": (changed, one),
                "to_right": (changed & correct & ~own, one),
                "away_from_right": (changed & ~correct & own, one),
            },
        )
    )
    baseline = baseline or {}
    paired = [(i, k) for i, k in enumerate(keys) if k in baseline]
    out["vs_no_trace"] = (
        paired_difference(
            [k for _, k in paired],
            np.array([rows[i]["answer_correct"] for i, _ in paired]),
            np.array([baseline[k]["answer_correct"] for _, k in paired]),
        )
        if paired
        else None
    )
    subsets: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        subsets[r["subset"]].append(r)
    out["by_subset"] = {
        s: {
            "outputs": len(rs),
            "accuracy": float(np.mean([r["answer_correct"] for r in rs])),
            "changed": float(np.mean([r["changed"] for r in rs])),
        }
        for s, rs in sorted(subsets.items())
    }
    return out


def _effect(gold: dict[tuple, dict], wrong: dict[tuple, dict]) -> dict[str, Any] | None:
    keys = sorted(set(gold) & set(wrong))
    if not keys:
        return None
    x = np.array([gold[k]["answer_correct"] for k in keys])
    y = np.array([wrong[k]["answer_correct"] for k in keys])
    subsets = np.array([gold[k]["subset"] for k in keys])
    items = [k[0] for k in keys]
    by_subset = {
        s: mcnemar(x[subsets == s], y[subsets == s], [i for i, t in zip(items, subsets) if t == s])
        for s in sorted(set(subsets))
    }
    b = sum(v["better_with_gold"] for v in by_subset.values())
    c = sum(v["better_with_wrong"] for v in by_subset.values())
    pooled = mcnemar(np.array([1] * b + [0] * c), np.array([0] * b + [1] * c), [str(i) for i in range(b + c)])
    return {
        "effect": paired_difference(keys, x, y),
        "stratified": {**pooled, "items": len(set(items))},
        "by_subset": by_subset,
    }


def _early_answering(by: dict[str, dict[tuple, dict]]) -> dict[str, Any] | None:
    """Accuracy and agreement with the final answer against the share of the trace kept."""
    cut = sorted((REGISTRY[n].truncate, n) for n in by if n in REGISTRY and REGISTRY[n].truncate is not None)
    if not cut:
        return None
    points: list[dict[str, Any]] = []
    for fraction, name in cut:
        keys = sorted(by[name])
        rows = [by[name][k] for k in keys]
        one = np.ones(len(rows))
        s = _shares(
            keys,
            {
                "accuracy": (np.array([r["answer_correct"] for r in rows], bool), one),
                "agreement": (np.array([not r["changed"] for r in rows], bool), one),
            },
        )
        points.append({"fraction": fraction, "intervention": name, **s})
    keys = sorted(by[cut[0][1]])
    rows = [by[cut[0][1]][k] for k in keys]
    whole = _shares(keys, {"accuracy": (np.array([r["own_correct"] for r in rows], bool), np.ones(len(rows)))})
    points.append(
        {
            "fraction": 1.0,
            "intervention": "the model's own output",
            "accuracy": whole["accuracy"],
            "agreement": {"p": 1.0, "ci95": [1.0, 1.0], "method": "constant", "items": len({k[0] for k in keys})},
        }
    )
    fr = [p["fraction"] for p in points]

    def area(what: str) -> float | None:
        return float(np.trapezoid([p[what]["p"] for p in points], fr) / (fr[-1] - fr[0])) if fr[-1] > fr[0] else None

    return {"points": points, "area_accuracy": area("accuracy"), "area_agreement": area("agreement")}


def _consistency(own: dict[tuple, dict]) -> dict[str, Any]:
    mismatches = [
        {"id": k[0], "seed": k[1], "margin": r.get("margin"), "diverged_at": r.get("diverged_at")}
        for k, r in sorted(own.items(), key=lambda kv: str(kv[0]))
        if r["changed"]
    ]
    n = len(own)
    return {"agree": n - len(mismatches), "outputs": n, "rate": (n - len(mismatches)) / n, "mismatches": mismatches}


def measures(rows_by_seed: dict[Any, list[dict[str, Any]]], subject: str = "") -> dict[str, Any]:
    """Every measure of one model's intervention rows (all seeds), with the findings in words."""
    by = _keyed(rows_by_seed)
    baseline = by.get(BASELINE)
    out: dict[str, Any] = {
        "interventions": {
            name: _intervention(sorted(rows), [rows[k] for k in sorted(rows)], baseline) for name, rows in by.items()
        },
        "effects": {
            step: e for step, (g, w) in STEP_PAIRS.items() if g in by and w in by and (e := _effect(by[g], by[w]))
        },
        "early_answering": _early_answering(by),
        "consistency": _consistency(by["own"]) if "own" in by else None,
    }
    out["findings"] = findings(out, subject)
    return out


# -- findings in words ------------------------------------------------------------------------------
def _pct_ci(share: dict[str, Any]) -> str:
    lo, hi = share["ci95"]
    return f"{pct(share['p'])} % [{pct(lo)}, {pct(hi)}]" if lo is not None else pct(share["p"], " %")


def _points(d: dict[str, Any]) -> str:
    lo, hi = d["ci95"]
    return f"{100 * d['p']:+.0f} points [{100 * lo:+.0f}, {100 * hi:+.0f}]"


def _step_finding(step: str, effect: dict[str, Any], ivs: dict[str, Any]) -> str:
    _, wrong = STEP_PAIRS[step]
    w = ivs[wrong]
    words = "the whole trace" if step == "trace" else f"the {step} step"
    st = effect["stratified"]
    moved = (
        f"{wrong.replace('_', ' ')} changed {_pct_ci(w['changed'])} of the answers "
        f"({pct(w['to_right']['p'], ' %')} to a right answer, {pct(w['away_from_right']['p'], ' %')} away from one)"
    )
    if BASELINE in ivs:
        moved += f"; no trace changed {pct(ivs[BASELINE]['changed']['p'], ' %')}"
    head = (
        f"accuracy with the gold minus with the wrong {'trace' if step == 'trace' else step}: "
        f"{_points(effect['effect'])}"
    )
    if st["p"] is None:
        return (
            f"{words}: {moved}; {head}: no item answered differently under the two, "
            f"so the answers do not depend on {words} in these {st['items']} items"
        )
    test = f"stratified exact McNemar p {st['p']:.2g}, {st['better_with_gold']} vs {st['better_with_wrong']} items"
    if st["p"] < ALPHA:
        verdict = (
            f"the answers depend on {words}"
            if effect["effect"]["p"] > 0
            else f"the answers are better with the wrong {step}: they depend on {words}, against it"
        )
    else:
        verdict = f"no significant dependence on {words} (not significant is not no dependence: see the interval)"
    return f"{words}: {moved}; {head} ({test}): {verdict}"


def findings(m: dict[str, Any], subject: str = "") -> list[str]:
    """The measures in words: the consistency check, each step's effect against no trace, early answering."""
    lead = f"{subject}: " if subject else ""
    out = []
    ivs = m["interventions"]
    c = m["consistency"]
    if c is not None:
        text = f"own trace forced back reproduced the model's answer on {c['agree']} of {c['outputs']} outputs"
        if c["mismatches"]:
            margins = [x["margin"] for x in c["mismatches"] if x["margin"] is not None]
            text += f" (mismatches' logit margins: {', '.join(f'{x:.3g}' for x in margins) or 'not measured'})"
        out.append(lead + text)
    for step, effect in m["effects"].items():
        out.append(lead + _step_finding(step, effect, ivs))
    if "gold" in ivs and BASELINE in ivs and ivs["gold"]["vs_no_trace"] is not None:
        out.append(
            lead + f"the gold trace gave {_pct_ci(ivs['gold']['accuracy'])} accuracy, "
            f"{_points(ivs['gold']['vs_no_trace'])} against no trace ({pct(ivs[BASELINE]['accuracy']['p'], ' %')})"
        )
    e = m["early_answering"]
    if e is not None:
        first = e["points"][0]
        out.append(
            lead + f"early answering: with {100 * first['fraction']:g} % of its trace kept the model gave its final "
            f"answer on {_pct_ci(first['agreement'])} of the outputs; area under the agreement curve "
            f"{e['area_agreement']:.2f} (1: the trace never matters)"
        )
    return out
