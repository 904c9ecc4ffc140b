"""results.json as pydantic models (`Results`, one `Group` per dataset x model x condition),
validated before it is written (`check_results`) and when `tracekd report` reads it
(`read_results`): a hand-edited or old results.json is one InputError naming the file and the
field. `fields_markdown` writes docs/outputs.md from the models of this module and of
`score/outputs.py` (the docstring under each field is its documentation).
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from tracekd.jsonio import read_json
from tracekd.score import outputs as score_outputs
from tracekd.score.intervention_outputs import InterventionRow, Interventions
from tracekd.score.outputs import Compact, Model, Num, Statistics, Status, validated


class LossTrend(Model):
    falling: bool | None
    """the training loss was still falling at the end: fitted drop over 5 %, slope below zero beyond the scatter (null: too few points)"""
    points: int
    """logged losses in the last quarter of the steps"""
    relative_drop: Num
    """the fitted drop across them, as a share of their mean"""
    drop_ci95: list[Num]
    """its 95 % interval (t interval of the slope)"""
    p: Num
    """one-sided p of the slope (below zero)"""
    rule: str
    """the rule, in words"""
    curve: list[list[float]]
    """the logged (step, loss) points (the report's loss plot)"""


class Finding(Model):
    step: str
    """the trace step"""
    definitions: Literal["tracekd", "paper"]
    """whose definitions"""
    verdict: Literal["positive", "negative", "none", "inconclusive", "too few", "not estimable"]
    """the stratified test's verdict (inconclusive: the test and the interval disagree; too few: fewer than 5 outputs in a margin of the informative strata)"""
    text: str
    """the finding in words, with its caveats"""
    dataset: str | None = None
    """(results.json's top list) the group's dataset"""
    model: str | None = None
    """its model"""
    condition: str | None = None
    """its condition"""


class Lengths(Model):
    target_tokens: Num
    """mean tokens per training target (null: untrained)"""
    output_tokens: Num
    """mean tokens per output"""


class Group(Statistics):
    """One dataset x model x condition, over all its seeds."""

    dataset: str
    """the dataset"""
    model: str
    """the model's name"""
    condition: str
    """the training condition (baseline: untrained)"""
    seeds: list[Any] = Field(min_length=1)
    """its seeds"""
    n: int
    """test items"""
    outputs: int
    """outputs (items x seeds)"""
    by_subset: dict[str, Compact]
    """answer and step accuracies per subset"""
    status: Status
    """outputs by status"""
    training: dict[str, LossTrend] | None = None
    """per seed: was the loss still falling"""
    findings: list[Finding]
    """the findings in words"""
    examples: list[str] = Field(min_length=1)
    """its per-example files (relative to the folder; inside it)"""
    lengths: Lengths | None = None
    """trace lengths (tokens)"""
    teacher: dict[str, Any] | None = None
    """(the teacher's own row) acceptance and trace style"""
    interventions: Interventions | None = None
    """`tracekd intervene` on its cells (config `interventions:`): accuracy and changes per intervention, step effects, early answering"""

    @model_validator(mode="after")
    def _examples_inside(self) -> Group:
        if any(Path(e).is_absolute() or ".." in Path(e).parts for e in self.examples):
            raise ValueError(f"an examples file is not a path inside the folder: {self.examples}")
        return self


class Comparison(Model):
    """Condition `a` against condition `b` on the items both have (`stats.paired_comparison`)."""

    dataset: str
    """the dataset"""
    model: str
    """the model"""
    a: str
    """the first condition"""
    b: str
    """the second"""
    items: int
    """items both have"""
    accuracy: list[float | None]
    """answer accuracy of a and of b on them (seeds averaged within an item)"""
    difference: float | None
    """a minus b"""
    ci95: list[float | None]
    """its 95 % paired bootstrap interval over items"""
    a_better: int = 0
    """items answered better under a (higher mean correctness over seeds)"""
    b_better: int = 0
    """items answered better under b"""
    p: float | None
    """exact two-sided sign test of the per-item differences (McNemar's exact test with one seed)"""
    test: str = ""
    """the test, in words"""
    interval: str = ""
    """the interval, in words"""
    text: str
    """the comparison in words, worded by the test"""


class BesideStep(Model):
    """One step's association with the answer on the matched items (tracekd's definitions)."""

    table: list[list[int]]
    """[[a, b], [c, d]]: step right / wrong x answer right / wrong"""
    test: str | None
    """the stratified test the verdict rests on (CMH or the exact conditional test; null: not estimable)"""
    odds_ratio: Num
    """its odds ratio"""
    odds_ratio_ci95: list[Num]
    """its 95 % interval"""
    p: Num
    """its p"""
    verdict: Literal["positive", "negative", "none", "inconclusive", "too few", "not estimable"]
    """the verdict, as in the findings"""


class BesideCell(Model):
    """One model x condition of either side, recomputed on the matched items."""

    side: Literal["here", "beside"]
    """here: this results.json; beside: the other"""
    dataset: str
    """the dataset"""
    model: str
    """the model"""
    condition: str
    """the condition"""
    seeds: list[Any]
    """its seeds"""
    n: int
    """matched test items it has"""
    outputs: int
    """its outputs on them"""
    rates: dict[str, dict[str, Any]]
    """each rate of the metric table on them: mean and 95 % interval (bootstrap over items)"""
    association: dict[str, BesideStep]
    """per step, its association with the answer"""


class Beside(Model):
    """`tracekd report DIR --beside OTHER`: both results on the same test items (docs/experiments.md)."""

    name: str
    """the other results' name"""
    kind: Literal["experiment", "rescore"]
    """what made them"""
    datasets: list[str]
    """the datasets both have"""
    items: int
    """test items matched (every group of both sides has them; matched on the example id)"""
    items_here: int
    """test items of this results.json (in those datasets)"""
    items_beside: int
    """test items of the other"""
    cells: list[BesideCell]
    """every model x condition of both sides on the matched items"""


class Results(Model):
    """results.json of a run (`tracekd run`) or of rescored published outputs."""

    name: str
    """the experiment's name"""
    kind: Literal["experiment", "rescore"]
    """what made it"""
    findings: list[Finding]
    """every group's findings"""
    config: dict[str, Any]
    """the validated config (rescore: format, dataset, source, files)"""
    conditions: list[str]
    """the conditions, in the report's order"""
    groups: list[Group] = Field(min_length=1)
    """one per dataset x model x condition"""
    comparisons: list[Comparison] = Field(default_factory=list)
    """every pair of conditions of one dataset and model, on the same items"""
    rows: str | None = None
    """the file beside results.json with every per-example row (rows.jsonl.gz: dataset, model, condition, seed and the row)"""
    intervention_rows: str | None = None
    """the file beside results.json with every intervention's row (interventions.jsonl.gz: dataset, model, condition, seed and the row of `tracekd intervene`)"""
    beside: Beside | None = None
    """the side-by-side table with another results.json (`tracekd report --beside`; a rerun of `tracekd run` leaves it out)"""

    @model_validator(mode="after")
    def _report_options(self) -> Results:
        limit = self.config.get("examples_in_report", 0)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"config.examples_in_report must be a whole number >= 0, not {limit!r}")
        return self


def check_results(results: dict[str, Any], path: str | Path) -> None:
    validated(Results, results, path, "a results.json tracekd made does not fit its schema")


def read_results(path: str | Path) -> dict[str, Any]:
    """A results.json, checked (its per-example files must lie inside its folder)."""
    return validated(Results, read_json(path), path, "not the results.json this tracekd writes")


# -- documentation ---------------------------------------------------------------------------------
DOCUMENTED: dict[str, type[BaseModel]] = {
    "scores.examples.jsonl: one line per output (`ExampleRow`)": score_outputs.ExampleRow,
    "scores.json (`Scores`)": score_outputs.Scores,
    "results.json (`Results`)": Results,
    "a results.json group (`Group`)": Group,
    "interventions.jsonl: one line per item x intervention (`InterventionRow`)": InterventionRow,
}


def _type_name(annotation: Any) -> str:
    text = str(annotation) if not isinstance(annotation, type) else annotation.__name__
    for prefix in (
        "typing.",
        "tracekd.score.outputs.",
        "tracekd.score.intervention_outputs.",
        "tracekd.report.outputs.",
        "<class '",
        "'>",
    ):
        text = text.replace(prefix, "")
    return text.replace("NoneType", "null").replace("|", "or").replace("Optional", "optional")


def _nested(annotation: Any) -> list[type[BaseModel]]:
    """The models a field's type names (inside lists, dicts and unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _nested(arg)]


def fields_markdown() -> str:
    """docs/outputs.md: every field of every output model, with its type and description."""
    parts = [
        "# Output files, field by field",
        "",
        "Generated from the models in `src/tracekd/score/outputs.py` and `src/tracekd/report/outputs.py`",
        "(`tests/score/test_outputs.py` checks this page is current). Every file is validated against its",
        "model when it is written and when it is read: a hand-edited or old file gets one message",
        "naming the file, the line and the field.",
        "",
    ]
    seen: set[type[BaseModel]] = set()
    queue = list(DOCUMENTED.items())
    while queue:
        title, model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        doc = (model.__doc__ or "").strip().replace("\n", " ")
        extra = " Other keys are allowed." if model.model_config.get("extra") == "allow" else ""
        parts += [
            f"## {title}",
            "",
            *([doc + extra, ""] if doc or extra else []),
            "| field | type | meaning |",
            "|---|---|---|",
        ]
        fields = dict(model.model_fields.items())
        for name, field in fields.items():
            meaning = (field.description or "").replace("|", "\\|").replace("<", "\\<")
            parts.append(f"| `{name}` | {_type_name(field.annotation)} | {meaning} |")
            queue += [(f"`{sub.__name__}`", sub) for sub in _nested(field.annotation) if sub not in seen]
        parts.append("")
    return "\n".join(parts)
