"""The files `tracekd intervene` writes, as pydantic models: a row of `interventions.jsonl`
(`InterventionRow`) and the measures (`Interventions`: interventions.json, and the `interventions`
block of a results.json group). Checked when read back; docs/outputs.md lists every field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from tracekd.jsonio import read_jsonl
from tracekd.score.outputs import Model, Num, Pair, validated


class InterventionRow(Model):
    """One output under one intervention."""

    id: str
    """the test item"""
    subset: str
    """its subset"""
    seed: Any
    """the seed of the intervention's random choices (the run's cell seed)"""
    intervention: str
    """the intervention (`traces/interventions.py`)"""
    forced: str
    """the text forced at the start of the assistant turn"""
    output: str
    """the forced text and the model's continuation"""
    answer: list[str] | None
    """the parsed answers (null: none found)"""
    answer_correct: bool
    """the dataset's answer scorer's verdict"""
    own_answer: list[str] | None
    """the answers of the model's own output"""
    own_correct: bool
    """whether they were right"""
    changed: bool
    """the answer differs from the model's own (normalised answer sets)"""
    diverged_at: int | None = None
    """(`own` rows whose answer changed, hf backend) the first generated token where the two decodings differ"""
    margin: float | None = None
    """there: logit of the model's first token minus logit of the new one, from one prefill"""


class Interval(Model):
    p: Num
    """the value"""
    ci95: Pair
    """its 95 % interval (bootstrap over items, seeds of an item together)"""
    method: Literal["bootstrap", "wilson", "constant"] | None
    """how the interval was made (constant: every item the same difference)"""
    items: int
    """test items"""


class SubsetRates(Model):
    outputs: int
    """outputs in the subset"""
    accuracy: float
    """answer accuracy"""
    changed: float
    """change rate against the model's own answer"""


class InterventionMeasures(Model):
    outputs: int
    """outputs (items x seeds)"""
    items: int
    """test items"""
    accuracy: Interval
    """answer accuracy"""
    changed: Interval
    """share of the answers that differ from the model's own"""
    to_right: Interval
    """share of all outputs whose answer changed from wrong to right"""
    away_from_right: Interval
    """share of all outputs whose answer changed from right to wrong"""
    vs_no_trace: Interval | None
    """accuracy minus the no_trace accuracy (paired on item x seed; null without no_trace)"""
    by_subset: dict[str, SubsetRates]
    """per subset"""


class McNemar(Model):
    better_with_gold: int
    """items right more often with the gold step"""
    better_with_wrong: int
    """items right more often with the wrong step"""
    items: int
    """items compared"""
    p: Num
    """exact McNemar p (null: no discordant item)"""


class Effect(Model):
    effect: Interval
    """accuracy with the gold step minus with the wrong step (paired)"""
    stratified: McNemar
    """exact test pooling the discordant items of every subset"""
    by_subset: dict[str, McNemar]
    """per subset"""


class EarlyPoint(Model):
    fraction: float
    """share of the model's own trace kept (1: its whole output)"""
    intervention: str
    """the truncation"""
    accuracy: Interval
    """answer accuracy"""
    agreement: Interval
    """share of the answers equal to the model's own final answer"""


class EarlyAnswering(Model):
    points: list[EarlyPoint]
    """the curve"""
    area_accuracy: Num
    """area under the accuracy curve (over the fractions, normalised to 1)"""
    area_agreement: Num
    """area under the agreement curve (1: the answer never depends on the trace)"""


class Mismatch(Model):
    id: str
    """the item"""
    seed: Any
    """the seed"""
    margin: Num
    """logit margin where the decodings part (null: not measured)"""
    diverged_at: int | None
    """the first generated token that differs"""


class Consistency(Model):
    agree: int
    """`own` outputs whose answer is the model's own"""
    outputs: int
    """`own` outputs"""
    rate: float
    """their share"""
    mismatches: list[Mismatch]
    """every mismatch, with its logit margin"""


class Interventions(Model):
    """The measures of one model's interventions (interventions.json; a results.json group's `interventions`)."""

    interventions: dict[str, InterventionMeasures]
    """per intervention"""
    effects: dict[str, Effect]
    """per trace step (label, evidence, trace): gold minus wrong"""
    early_answering: EarlyAnswering | None
    """the early-answering curve (null: no truncation run)"""
    consistency: Consistency | None
    """the `own` check (null: not run)"""
    findings: list[str]
    """the measures in words"""


def read_intervention_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of an interventions.jsonl, each checked."""
    return [
        validated(InterventionRow, row, path, "not an interventions row tracekd writes", lineno)
        for lineno, row in read_jsonl(path)
    ]
