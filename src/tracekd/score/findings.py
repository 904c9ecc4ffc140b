"""Findings in words: one sentence per model x condition x step x definitions, with the stratified
test's verdict, the effect size with its interval, and the caveats that apply.

The input is anything with the keys `score.evaluate.statistics` returns (a scores.json summary, a
results.json group). Caveat rules (docs/scoring.md):
- left out: outputs in strata where the step or the answer never varies (they carry no information);
- few items: fewer than 50 test items in the informative strata, or fewer than 10 outputs per seed
  in the smallest margin (step right, step wrong, answer right, answer wrong) of those strata;
- parse rate below 90 % (outputs in which an answer was found);
- the odds ratio differs between strata (Breslow-Day p < 0.05);
- outputs the paper's definitions do not evaluate (no `<think>` trace);
- small strata (an expected cell below 5): Breslow-Day's p is approximate; with seeds, the CMH
  approximation is doubtful (the exact test needs one output per item).

Verdicts: "too few" where the smallest margin of the informative strata has fewer than 5
outputs; the exact conditional test (`stats.exact_stratified`) instead of CMH where it was run;
"inconclusive" where the test and the odds ratio's interval disagree.
- training loss still falling (`train.diagnostics.loss_trend`, passed in by the caller that has the logs);
- by construction: a step whose gold facts state the answer (evidence, answer-bearing, trace)
  with a pooled φ of 0.8 or more.
"""

from __future__ import annotations

from typing import Any

from tracekd.score.metrics import num, pct
from tracekd.score.stats import SMALL_EXPECTED

ALPHA = 0.05
FEW_ITEMS = 50
FEW_OUTPUTS_PER_SEED = 10
LOW_PARSE_RATE = 0.90
CONTAINS_ANSWER = ("evidence", "answer_fact", "trace")  # steps whose gold facts state the answer
BY_CONSTRUCTION_PHI = 0.8
MIN_INFORMATIVE = 5  # fewer outputs than this in the smallest margin of the informative strata: no verdict


def not_estimable_reason(block: dict[str, Any]) -> str:
    (a, b), (c, d) = block["table"]
    if a + b + c + d == 0:
        return "no outputs were evaluated"
    if a + b == 0 or c + d == 0:
        return f"the step is {'never' if a + b == 0 else 'always'} right"
    if a + c == 0 or b + d == 0:
        return f"the answer is {'never' if a + c == 0 else 'always'} right"
    return "no stratum has both the step and the answer varying"


def caveats(block: dict[str, Any], seeds: int, parse_rate: float | None, group: str = "seed") -> list[str]:
    """The caveats of one step's stratified test (see the module docstring for the rules)."""
    out = []
    st = block["stratified"]
    if st["estimable"] and st["left_out_outputs"]:
        names = list(st["left_out"])
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        out.append(
            f"{st['left_out_outputs']} outputs left out, in strata where the step or the answer never varies ({shown})"
        )
    if st["estimable"]:
        name, smallest = min(st["margins"].items(), key=lambda kv: kv[1])
        per_seed = smallest / max(seeds, 1)
        if st["items"] < FEW_ITEMS or per_seed < FEW_OUTPUTS_PER_SEED:
            out.append(
                f"few items ({st['items']} test items; smallest margin: {smallest} output{'s' * (smallest != 1)} with the "
                f"{name.replace('_', ' ')}" + (f", {per_seed:.0f} per {group}" if seeds > 1 else "") + ")"
            )
    if parse_rate is not None and parse_rate < LOW_PARSE_RATE:
        out.append(f"parse rate {pct(parse_rate, ' %')} (below {LOW_PARSE_RATE:.0%})")
    bd = st.get("breslow_day")
    if bd and bd["p"] is not None and bd["p"] < ALPHA:
        out.append(
            f"the odds ratio differs between strata (Breslow-Day p = {bd['p']:.3g}), so one common odds ratio summarises unlike strata"
        )
    if bd and st.get("min_expected") is not None and st["min_expected"] < SMALL_EXPECTED:
        out.append(
            f"Breslow-Day assumes large counts in every stratum (smallest expected cell {st['min_expected']:.1f}): "
            "its p is approximate"
        )
    if st["estimable"] and st.get("exact") is None and st.get("min_expected", 99) < SMALL_EXPECTED:
        out.append(
            f"small strata (smallest expected cell {st['min_expected']:.1f}) with seeds of one item in several "
            "strata: the CMH χ² approximation is doubtful and the exact test does not apply to clustered outputs"
        )
    return out


def sentence(
    subject: str,
    step: str,
    definitions: str,
    block: dict[str, Any],
    notes: list[str],
    without: dict[str, Any] | None = None,
    evidence_rule: str | None = None,
) -> tuple[str, str]:
    """(verdict, sentence) for one step."""
    st, pooled = block["stratified"], block["pooled"]
    rule = f", {evidence_rule}" if evidence_rule else ""
    head = f"{subject} — {step} step ({definitions} definitions{rule}): "
    if not st["estimable"]:
        verdict = "not estimable"
        body = f"association not estimable: {not_estimable_reason(block)}"
    else:
        verdict, body = _verdict(st)
    both, given = block.get("both_right", {}), block.get("answer_given_step_right", {})
    if both.get("p") is not None:
        body += f"; both right in {pct(both['p'], ' %')} of outputs"
    if given.get("p") is not None:
        body += f", P(answer right | step right) = {pct(given['p'], ' %')}"
    if pooled["chi2"] is not None:
        body += f"; pooled χ² (the paper's test) {pooled['chi2']:.1f}"
    for flag, w in (without or {}).items():
        ws = w["stratified"]
        if ws["estimable"]:
            lo, hi = ws["odds_ratio_ci95"]
            body += (
                f"; without the {w['left_out_outputs']} outputs flagged {flag}: odds ratio {num(ws['odds_ratio'], '.2f')}"
                + (f" [{lo:.2f}, {hi:.2f}]" if lo is not None else "")
                + f", p = {ws['p']:.3g}"
            )
    return verdict, head + body + ". Caveats: " + ("; ".join(notes) if notes else "none") + "."


def _verdict(st: dict[str, Any]) -> tuple[str, str]:
    """The verdict of an estimable stratified test and its words: the exact conditional test when
    it was run (small strata), else the CMH test; no verdict where the test and the odds ratio's
    interval disagree (p < 0.05 with an interval containing 1, or the reverse), nor where fewer than
    5 outputs of the informative strata are in a margin (the numbers are still quoted)."""
    exact = st.get("exact")
    test = exact or st
    odds_ratio, (lo, hi) = test["odds_ratio"], test["odds_ratio_ci95"]
    significant = test["p"] < ALPHA
    excludes_one = lo is not None and hi is not None and (lo > 1 or hi < 1)
    positive = odds_ratio is not None and odds_ratio > 1
    name, smallest = min(st["margins"].items(), key=lambda kv: kv[1])
    if smallest < MIN_INFORMATIVE:
        verdict = "too few"
        what = (
            f"too few informative outputs for a verdict ({smallest} output{'s' * (smallest != 1)} with the "
            f"{name.replace('_', ' ')} in the {st['outputs']} outputs of the strata where both vary)"
        )
    elif lo is not None and hi is not None and significant != excludes_one:
        verdict = "inconclusive"
        what = "no verdict: the test and the odds ratio's interval disagree"
    elif significant:
        verdict = "positive" if positive else "negative"
        what = "a right step goes with a right answer" if positive else "a right step goes with a wrong answer"
    else:
        verdict = "none"
        what = "no significant association between a right step and a right answer"
    ci = f" [95 % CI {num(lo, '.2f')}, {num(hi, '.2f')}]" if lo is not None else " (no interval)"
    adj = f", design effect {st['design_effect']:.2f}" if st["design_effect"] > 1 else ""
    if exact:
        small = f"smallest expected cell {st['min_expected']:.1f}"
        body = (
            f"{what} (exact conditional test p = {exact['p']:.3g}, stratified by {st['by']}: {small}, "
            f"CMH χ² = {st['chi2']:.2f} not used); conditional maximum-likelihood odds ratio "
            f"{num(odds_ratio, '.2f')}{ci}"
        )
    else:
        body = (
            f"{what} (CMH χ² = {st['chi2']:.2f}, p = {st['p']:.3g}, stratified by {st['by']}{adj}); "
            f"Mantel-Haenszel odds ratio {num(odds_ratio, '.2f')}{ci}"
        )
    return verdict, body


def by_construction(step: str, block: dict[str, Any]) -> str | None:
    """The caveat of a step whose gold facts state the answer (the evidence, answer-bearing and
    trace steps): where the pooled φ is 0.8 or more, copying the answer-bearing fact nearly fixes a
    right answer, so the association is largely by construction."""
    phi = block["pooled"].get("phi")
    if step not in CONTAINS_ANSWER or phi is None or phi < BY_CONSTRUCTION_PHI:
        return None
    return (
        f"the step's gold facts state the answer, so a right step nearly fixes a right answer (φ = {phi:.2f}): "
        "the association is largely by construction; the anchor step, which does not state it, is the informative one"
    )


def summary_findings(
    s: dict[str, Any], subject: str, extra: list[str] | tuple[str, ...] = (), evidence_rule: str | None = None
) -> list[dict[str, Any]]:
    """The sentences for every step of a summary (tracekd's definitions, then the paper's), each
    naming the evidence rule it was judged under (`evidence_rule`: tracekd's gold-evidence rule,
    where the caller knows it; the paper's definitions name theirs)."""
    seeds = len(s.get("seeds", [0]))
    parse_rate = s["rates"]["parse_rate"]["mean"]
    out = []
    for defs, steps, unevaluated, without_key, rule in (
        ("tracekd", s["association"], 0, "association", evidence_rule and f"gold evidence: {evidence_rule} rule"),
        (
            "paper",
            s["paper"]["association"],
            s["paper"]["unevaluated"],
            "paper",
            f"evidence rule: {s['paper'].get('rule', 'stated')}",
        ),
    ):
        for step, block in steps.items():
            notes = caveats(block, seeds, parse_rate, s.get("grouped_by") or "seed")
            construction = by_construction(step, block)
            if construction:
                notes.append(construction)
            if unevaluated:
                notes.append(f"{unevaluated} outputs without a <think> trace are not evaluated")
            notes += list(extra)
            without = {
                flag: {**w[without_key][step], "left_out_outputs": w["left_out_outputs"]}
                for flag, w in s.get("without_flagged", {}).items()
            }
            verdict, text = sentence(subject, step, defs, block, notes, without, rule)
            out.append({"step": step, "definitions": defs, "verdict": verdict, "text": text})
    return out
