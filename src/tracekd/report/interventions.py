"""The report's intervention section: per group, accuracy and changes under each intervention, and
the paired effect of each trace step (`score/interventions.py` computes them)."""

from __future__ import annotations

from typing import Any

from tracekd.report.tables import with_ci
from tracekd.score.metrics import num, pct

NOTE = (
    "Each trained model answers again with a forced trace (docs/interventions.md). changed: the answer "
    "differs from the model's own; to right / away: changed from wrong to right / from right to wrong "
    "(shares of all outputs); vs no trace: accuracy minus the accuracy with no trace, paired. "
    "[95 % bootstrap interval over test items, seeds of an item together.]"
)
EFFECTS_NOTE = (
    "Accuracy with the gold step minus with the wrong step (the other step the model's own; trace: both), "
    "paired on item x seed. McNemar: exact, on items, pooling the discordant items of all subsets "
    "(gold better / wrong better)."
)


def _points(d: dict[str, Any] | None) -> str:
    if d is None:
        return "—"
    lo, hi = d["ci95"]
    return f"{100 * d['p']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def intervention_rows(group: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    m = group.get("interventions")
    if not m:
        return None
    header = ["intervention", "accuracy", "vs no trace (points)", "changed", "to right", "away"]
    rows = [
        [
            name,
            with_ci(iv["accuracy"]),
            _points(iv["vs_no_trace"]),
            with_ci(iv["changed"]),
            pct(iv["to_right"]["p"]),
            pct(iv["away_from_right"]["p"]),
        ]
        for name, iv in m["interventions"].items()
    ]
    return header, rows


def effect_rows(group: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    m = group.get("interventions")
    if not m or not m["effects"]:
        return None
    header = ["step", "gold − wrong (points)", "McNemar p", "items gold / wrong better", "items"]
    rows = [
        [
            step,
            _points(e["effect"]),
            num(e["stratified"]["p"], ".2g"),
            f"{e['stratified']['better_with_gold']} / {e['stratified']['better_with_wrong']}",
            str(e["stratified"]["items"]),
        ]
        for step, e in m["effects"].items()
    ]
    return header, rows


def intervention_findings(results: dict[str, Any]) -> list[str]:
    return [text for g in results["groups"] for text in (g.get("interventions") or {}).get("findings", [])]
