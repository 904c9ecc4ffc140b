"""The report's opening: the answer first.

Per dataset and model, the answer accuracy of each condition with its interval and the paired
comparisons of the conditions; per trace step, one line per condition that has a trace: does a
right step go with a right answer, how strongly (the stratified odds ratio and its interval), how
sure (the p of the test the verdict rests on), worded by that verdict. Groups whose outputs have
no trace step right anywhere (an untrained baseline, answer only) are named once instead of
giving a "not estimable" line per step, and so are the paper's definitions where no output has a
`<think>` trace (`applies`: which findings are listed).
"""

from __future__ import annotations

from typing import Any

from tracekd.report.tables import rate_text
from tracekd.score.findings import by_construction, caveats, not_estimable_reason
from tracekd.score.metrics import Metric, num, pct, table_columns
from tracekd.score.stats import ALPHA_PAIRED

VERDICT_WORDS = {
    "positive": "a right step goes with a right answer",
    "negative": "a right step goes with a wrong answer",
    "none": "no significant association (which is not evidence of none)",
    "inconclusive": "no verdict (the test and the odds ratio's interval disagree)",
    "too few": "too few informative outputs for a verdict",
    "not estimable": "not estimable",
}


def pairs(results: dict[str, Any]) -> list[tuple[str, str]]:
    """The (dataset, model) pairs of the groups, in their order."""
    return list(dict.fromkeys((g["dataset"], g["model"]) for g in results["groups"]))


def rate_columns(groups: list[dict[str, Any]]) -> list[Metric]:
    """The metrics of tracekd's definitions some group has (one added after the results were made is left out)."""
    return [m for m in table_columns("tracekd") if any(m.name in g["rates"] for g in groups)]


def rates_row(group: dict[str, Any], columns: list[Metric]) -> list[str]:
    """A group's dataset, model, condition, seeds, items and each rate of `columns`, as text."""
    return [
        group["dataset"],
        group["model"],
        group["condition"],
        str(len(group["seeds"])),
        str(group["n"]),
        *(rate_text(metric, group["rates"].get(metric.name, {})) for metric in columns),
    ]


def comparison_verdict(a: str, b: str, c: dict[str, Any]) -> str:
    """A paired comparison in words: better only where the sign test and the interval both say so."""
    lo, hi = c["ci95"]
    excludes = lo > 0 or hi < 0
    significant = c["p"] < ALPHA_PAIRED
    if significant and excludes:
        return f"{a} answers {'more' if c['difference'] > 0 else 'less'} accurately than {b}"
    if not significant and not excludes:
        return "the difference is not significant (the data do not show which condition answers better)"
    return "no verdict: the test and the interval disagree"


def has_trace(group: dict[str, Any]) -> bool:
    """Whether any output of the group gets any trace step right (tracekd's definitions)."""
    return any(sum(block["table"][0]) > 0 for block in group["association"].values())


def paper_evaluated(group: dict[str, Any]) -> bool:
    """Whether the paper's definitions judged any output of the group (it needs a `<think>` trace)."""
    return bool(group["paper"]["evaluated"])


def applies(group: dict[str, Any], definitions: str) -> bool:
    """Whether the group's findings under these definitions say anything (see the module docstring)."""
    return has_trace(group) if definitions == "tracekd" else paper_evaluated(group)


def not_judged(results: dict[str, Any]) -> list[str]:
    """The sentences naming, once, the groups whose step findings do not apply."""
    out = []
    groups = results["groups"]
    no_trace = [g for g in groups if not has_trace(g)]
    if no_trace:
        out.append(
            f"No trace to judge in {_names(results, no_trace)}: no output gets any trace step right, so no step's "
            "association with the answer is estimated there."
        )
    no_think = [g for g in groups if has_trace(g) and not paper_evaluated(g)]
    if no_think:
        out.append(
            f"The paper's definitions judge only outputs with a <think> trace; no output of {_names(results, no_think)} "
            "has one, so only tracekd's definitions are reported for them."
        )
    return out


def _names(results: dict[str, Any], groups: list[dict[str, Any]]) -> str:
    """The groups by condition (with dataset and model where the results have several pairs)."""
    one = len(pairs(results)) == 1
    return ", ".join(g["condition"] if one else f"{g['dataset']} / {g['model']} / {g['condition']}" for g in groups)


def step_test(block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The test a step's verdict rests on: its name and its result (odds ratio, interval, p)."""
    st = block["stratified"]
    if st.get("exact"):
        return "exact conditional test", st["exact"]
    return "CMH", st


def odds_text(test: dict[str, Any]) -> str:
    lo, hi = test.get("odds_ratio_ci95") or (None, None)
    ci = f" [{num(lo, '.2f')}, {num(hi, '.2f')}]" if lo is not None and hi is not None else ""
    return f"OR {num(test.get('odds_ratio'), '.2f')}{ci}"


def _verdicts(group: dict[str, Any]) -> dict[str, str]:
    return {f["step"]: f["verdict"] for f in group.get("findings", []) if f["definitions"] == "tracekd"}


def step_line(group: dict[str, Any], step: str) -> str:
    """One condition's verdict on one step: words, strength, certainty."""
    block = group["association"][step]
    verdict = _verdicts(group).get(step, "not estimable")
    words = VERDICT_WORDS[verdict]
    if verdict == "not estimable":
        return f"{group['condition']}: {words} ({not_estimable_reason(block)})"
    name, test = step_test(block)
    notes = caveats(block, len(group["seeds"]), group["rates"]["parse_rate"]["mean"])
    tags = [short for prefix, short in CAVEAT_TAGS if any(note.startswith(prefix) for note in notes)]
    if by_construction(step, block):
        tags.append("largely by construction: its gold facts state the answer")
    caveat = f" ({'; '.join(tags)})" if tags else ""
    return f"{group['condition']}: {words}, {odds_text(test)}, {name} p = {num(test.get('p'))}{caveat}"


#: the caveats of `findings.caveats` the summary names (by how each begins), in short
CAVEAT_TAGS = (
    ("few items", "few items"),
    ("parse rate", "low parse rate"),
    ("the odds ratio differs", "the odds ratio differs between strata"),
    ("small strata", "small strata"),
)


def accuracy_line(groups: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{g['condition']} {pct(g['rates']['answer_accuracy']['mean'], ' %')}"
        + _interval(g["rates"]["answer_accuracy"]["ci95"])
        for g in groups
    )


def _interval(ci: list[float | None]) -> str:
    lo, hi = ci
    return "" if lo is None or hi is None else f" [{pct(lo)}, {pct(hi)}]"


def comparison_line(c: dict[str, Any]) -> str:
    if not c["items"]:
        return f"{c['a']} vs {c['b']}: no item in common"
    lo, hi = c["ci95"]
    return (
        f"{c['a']} vs {c['b']}: {comparison_verdict(c['a'], c['b'], c)} ({100 * c['difference']:+.1f} points "
        f"[{100 * lo:+.1f}, {100 * hi:+.1f}], sign test p = {c['p']:.3g}, {c['items']} items)"
    )


def summary(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per (dataset, model): its title, the accuracy line, the comparison lines and the step lines
    ((step, [line per condition with a trace])); the renderers add the markup."""
    out = []
    for dataset, model in pairs(results):
        groups = [g for g in results["groups"] if (g["dataset"], g["model"]) == (dataset, model)]
        traced = [g for g in groups if has_trace(g)]
        steps = list(dict.fromkeys(step for g in traced for step in g["association"]))
        out.append(
            {
                "title": f"{dataset} / {model}",
                "accuracy": accuracy_line(groups),
                "comparisons": [
                    comparison_line(c)
                    for c in results.get("comparisons", [])
                    if (c["dataset"], c["model"]) == (dataset, model)
                ],
                "steps": [(step, [step_line(g, step) for g in traced if step in g["association"]]) for step in steps],
            }
        )
    return out


SUMMARY_NOTE = (
    "Answer accuracy pooled over seeds [95 % interval: bootstrap over test items]; comparisons paired on the same "
    "items (bootstrap interval of the difference, exact sign test; better only where both say so). Trace steps under "
    "tracekd's definitions: the odds ratio of a right answer given a right step [95 % CI], stratified by subset (× "
    "seed), and the p of the test the verdict rests on (CMH, or the exact conditional test in small strata); the "
    "findings below give each with its caveats."
)
