"""results.json as pydantic models (`Results`, one `Group` per dataset x model x condition),
validated before it is written (`check_results`) and when `tracekd report` reads it
(`read_results`): a hand-edited or old results.json is one InputError naming the file and the
field. `fields_markdown` writes docs/outputs.md from the models of this module and of
`score/outputs.py` (their field descriptions are the documentation).
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from tracekd.jsonio import read_json
from tracekd.score import outputs as score_outputs
from tracekd.score.outputs import Compact, Model, Num, Statistics, invalid


class LossTrend(Model):
    falling: bool | None = Field(description="the training loss was still falling at the end (null: too few points)")
    points: int = Field(description="logged losses in the last quarter of the steps")
    relative_drop: Num = Field(description="the fitted drop across them, as a share of their mean")
    rule: str = Field(description="the rule, in words")


class Finding(Model):
    step: str = Field(description="the trace step")
    definitions: Literal["tracekd", "paper"] = Field(description="whose definitions")
    verdict: Literal["positive", "negative", "none", "not estimable"] = Field(description="the stratified test's verdict")
    text: str = Field(description="the finding in words, with its caveats")
    dataset: str | None = Field(None, description="(results.json's top list) the group's dataset")
    model: str | None = Field(None, description="its model")
    condition: str | None = Field(None, description="its condition")


class GroupStatus(Model):
    ok: int = Field(description="outputs with an answer")
    empty: int = Field(description="empty outputs")
    unparsable: int = Field(description="outputs without an answer")
    missing: int = Field(description="test examples without a prediction")


class Lengths(Model):
    target_tokens: Num = Field(description="mean tokens per training target (null: untrained)")
    output_tokens: Num = Field(description="mean tokens per output")


class Group(Statistics):
    """One dataset x model x condition, over all its seeds."""

    dataset: str = Field(description="the dataset")
    model: str = Field(description="the model's name")
    condition: str = Field(description="the training condition (baseline: untrained)")
    seeds: list[Any] = Field(description="its seeds")
    n: int = Field(description="test items")
    outputs: int = Field(description="outputs (items x seeds)")
    by_subset: dict[str, Compact] = Field(description="answer and step accuracies per subset")
    status: GroupStatus = Field(description="outputs by status")
    training: dict[str, LossTrend] | None = Field(None, description="per seed: was the loss still falling")
    findings: list[Finding] = Field(description="the findings in words")
    examples: list[str] = Field(description="its per-example files (relative to the folder; inside it)")
    lengths: Lengths | None = Field(None, description="trace lengths (tokens)")
    teacher: dict[str, Any] | None = Field(None, description="(the teacher's own row) acceptance and trace style")

    @model_validator(mode="after")
    def _examples_inside(self) -> Group:
        if any(Path(e).is_absolute() or ".." in Path(e).parts for e in self.examples):
            raise ValueError(f"an examples file is not a path inside the folder: {self.examples}")
        return self


class Results(Model):
    """results.json of a run (`tracekd run`) or of rescored published outputs."""

    name: str = Field(description="the experiment's name")
    kind: Literal["experiment", "rescore"] = Field(description="what made it")
    findings: list[Finding] = Field(description="every group's findings")
    config: dict[str, Any] = Field(description="the validated config (rescore: format, dataset, source, files)")
    conditions: list[str] = Field(description="the conditions, in the report's order")
    groups: list[Group] = Field(min_length=1, description="one per dataset x model x condition")


def check_results(results: dict[str, Any], path: str | Path) -> None:
    try:
        Results.model_validate(results)
    except ValidationError as e:
        raise invalid(e, path, what="a results.json tracekd made does not fit its schema") from None


def read_results(path: str | Path) -> dict[str, Any]:
    """A results.json, checked (its per-example files must lie inside its folder)."""
    results = read_json(path)
    try:
        Results.model_validate(results)
    except ValidationError as e:
        raise invalid(e, path, what="not the results.json this tracekd writes") from None
    return results


# -- documentation ---------------------------------------------------------------------------------
DOCUMENTED: dict[str, type[BaseModel]] = {
    "scores.examples.jsonl: one line per output (`ExampleRow`)": score_outputs.ExampleRow,
    "scores.json (`Scores`)": score_outputs.Scores,
    "results.json (`Results`)": Results,
    "a results.json group (`Group`)": Group,
}


def _type_name(annotation: Any) -> str:
    text = str(annotation) if not isinstance(annotation, type) else annotation.__name__
    for prefix in ("typing.", "tracekd.score.outputs.", "tracekd.report.outputs.", "<class '", "'>"):
        text = text.replace(prefix, "")
    return text.replace("NoneType", "null").replace("|", "or").replace("Optional", "optional")


def _nested(annotation: Any) -> list[type[BaseModel]]:
    """The models a field's type names (inside lists, dicts and unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _nested(arg)]


def fields_markdown() -> str:
    """docs/outputs.md: every field of every output model, with its type and description."""
    parts = ["# Output files, field by field", "",
             "Generated from the models in `src/tracekd/score/outputs.py` and `src/tracekd/report/outputs.py`",
             "(`tests/test_outputs.py` checks this page is current). Every file is validated against its",
             "model when it is written and when it is read: a hand-edited or old file gets one message",
             "naming the file, the line and the field.", ""]
    seen: set[type[BaseModel]] = set()
    queue = [(title, model) for title, model in DOCUMENTED.items()]
    while queue:
        title, model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        doc = (model.__doc__ or "").strip().replace("\n", " ")
        extra = " Other keys are allowed." if model.model_config.get("extra") == "allow" else ""
        parts += [f"## {title}", "", *([doc + extra, ""] if doc or extra else []), "| field | type | meaning |", "|---|---|---|"]
        fields = {n: f for n, f in model.model_fields.items()}
        for name, field in fields.items():
            meaning = (field.description or "").replace("|", "\\|").replace("<", "\\<")
            parts.append(f"| `{name}` | {_type_name(field.annotation)} | {meaning} |")
            queue += [(f"`{sub.__name__}`", sub) for sub in _nested(field.annotation) if sub not in seen]
        parts.append("")
    return "\n".join(parts)
