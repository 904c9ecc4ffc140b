"""The files `tracekd evaluate` writes, as pydantic models: a per-example row of
`scores.examples.jsonl` (`ExampleRow`) and `scores.json` (`Scores`), with the statistics blocks
they share with results.json.

Every row and every summary is validated before it is written (`check_rows`, `check_scores`)
and when it is read back (`read_rows`, `read_scores`): a hand-edited file, or one an older tracekd
wrote, is one InputError naming the file, the line and the field. What is written is the dict the
scorer made, so validation changes no byte. docs/outputs.md lists every field (made from the
descriptions here; `tests/test_outputs.py` keeps it current).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tracekd.errors import InputError
from tracekd.jsonio import read_json, read_jsonl

Num = float | None  # a statistic that is undefined for some data (null in the file)
Pair = list[Num]  # [low, high] of a 95 % interval (nulls when there is none)
Table = list[list[int]]  # a 2x2 table [[a, b], [c, d]]: rows step right / wrong, columns answer right / wrong


class Model(BaseModel):
    """A fixed shape: an unknown key is refused (a typo, or a file of another version)."""

    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    """A shape with named keys plus others a part of tracekd adds (a dataset scorer, the metric table)."""

    model_config = ConfigDict(extra="allow")


# -- one output ------------------------------------------------------------------------------------
class Gold(Model):
    label: str = Field(description="the gold label")
    evidence: list[str] = Field(description="texts of the gold evidence items")
    anchor: list[str] = Field(description="texts of the anchor items")
    answer_facts: list[str] = Field(description="texts of the answer-bearing items")
    answers: list[str] = Field(description="the gold answers")


class Parsed(Model):
    label: str | None = Field(description="the label the output states (null: none found)")
    evidence: list[str] | None = Field(description="the evidence items it cites (null: no evidence step)")
    answers: list[str] | None = Field(description="its answers (null: none found)")


class AnswerScores(Open):
    """The dataset's answer scorer's numbers (`score/answers.py`): `correct` and its own."""

    correct: bool = Field(description="the answer is right (the answer scorer's verdict; the 2x2 tables use it)")


class EvidenceScore(Model):
    precision: float = Field(description="cited items that are gold / cited items")
    recall: float = Field(description="gold items cited / gold items")
    f1: float = Field(description="F1 of the two")
    exact: bool = Field(description="every cited item matches a context item and the matched set is the gold set")
    matched: list[str] = Field(description="context ids the cited items matched")
    unmatched: int = Field(description="cited items matching no context item")


class PaperSteps(Model):
    label_correct: bool = Field(description="the gold label occurs in the trace's first sentence")
    evidence_correct: bool = Field(description="some context fact occurs verbatim in the trace")
    trace_correct: bool = Field(description="both")


class ExampleRow(Model):
    """One line of scores.examples.jsonl: everything tracekd measures about one output."""

    id: str = Field(description="the example id")
    subset: str = Field(description="the example's subset")
    label: str = Field(description="its gold label")
    question: str = Field(description="its question")
    gold: Gold = Field(description="its gold decomposition, as texts")
    flags: list[str] = Field(description="the decomposition's flags for the example")
    status: Literal["ok", "empty", "unparsable", "missing"] = Field(
        description="ok; empty output; unparsable (no answer found); missing (no prediction, with --allow-missing)")
    parsed: Parsed = Field(description="what the parser (or the free-form reader) found in the output")
    answer: AnswerScores = Field(description="the answer scores")
    label_correct: bool = Field(description="the label step is right (tracekd's definition)")
    evidence: EvidenceScore = Field(description="the evidence step, exact text match")
    evidence_tolerant: EvidenceScore = Field(description="the evidence step, tolerant match (token F1 >= 0.9)")
    anchor_retrieved: bool | None = Field(description="every anchor item is cited (null: the example has none)")
    answer_fact_retrieved: bool | None = Field(description="every answer-bearing item is cited (null: none)")
    trace_correct: bool = Field(description="label right and evidence exactly the gold set")
    paper: PaperSteps | None = Field(description="the paper's definitions (null: no <think> trace, not evaluated)")
    output: str = Field(description="the model's output")


# -- statistics (scores.json and results.json groups) -----------------------------------------------
class Rate(Model):
    mean: Num = Field(description="the rate over all outputs of all seeds (a ratio of sums)")
    ci95: Pair = Field(description="its 95 % interval (bootstrap over test items)")
    method: Literal["bootstrap", "wilson"] | None = Field(description="how the interval was made")
    sd: Num = Field(description="sd of the per-seed values (null with one seed)")
    per_seed: list[Num] = Field(description="the rate of each seed")


class Share(Model):
    p: Num = Field(description="the ratio")
    ci95: Pair = Field(description="its 95 % interval")
    method: Literal["bootstrap", "wilson"] | None = Field(description="how the interval was made")
    items: int = Field(description="test items the ratio is over")


class Wilson(Model):
    p: Num = Field(description="k / n")
    k: float = Field(description="successes")
    n: int = Field(description="trials")
    ci95: Pair = Field(description="the Wilson score interval")


class Pooled(Model):
    """One 2x2 table's textbook statistics (they treat every output as independent)."""

    table: Table = Field(description="the table")
    n: int = Field(description="outputs in it")
    chi2: Num = Field(description="Pearson chi-square (the paper's test)")
    chi2_p: Num = Field(description="its p")
    chi2_yates: Num = Field(description="with Yates' correction")
    chi2_yates_p: Num = Field(description="its p")
    phi: Num = Field(description="phi coefficient")
    fisher_p: Num = Field(description="Fisher's exact test p")
    odds_ratio: Num = Field(description="sample odds ratio (a*d / b*c)")
    odds_ratio_ci95: Pair = Field(description="Woolf 95 % interval")
    p_answer_given_step_correct: Wilson = Field(description="P(answer right | step right)")
    p_answer_given_step_wrong: Wilson = Field(description="P(answer right | step wrong)")
    test: str | None = Field(None, description="which test this is (in words)")


class BreslowDay(Model):
    chi2: float = Field(description="Breslow-Day statistic (design-effect corrected)")
    df: int = Field(description="degrees of freedom (strata - 1)")
    p: float = Field(description="its p")


class Stratified(Model):
    """The Cochran-Mantel-Haenszel test over strata, the Mantel-Haenszel odds ratio, Breslow-Day."""

    test: str = Field(description="Cochran-Mantel-Haenszel")
    strata: int = Field(description="strata")
    informative_strata: int = Field(description="strata where the step and the answer both vary")
    left_out: dict[str, Table] = Field(description="the other strata's tables (they carry no information)")
    left_out_outputs: int = Field(description="outputs in them")
    outputs: int = Field(description="outputs in the informative strata")
    items: int = Field(description="test items in them")
    margins: dict[str, int] | None = Field(description="step right / wrong, answer right / wrong in them")
    chi2: Num = Field(description="CMH chi-square, divided by the design effect")
    p: Num = Field(description="its p")
    chi2_unadjusted: Num = Field(description="CMH chi-square before the design effect")
    design_effect: Num = Field(description="variance inflation from the seeds of one item (1: one output per item)")
    odds_ratio: Num = Field(description="Mantel-Haenszel common odds ratio")
    odds_ratio_ci95: Pair = Field(description="its 95 % interval (Robins-Breslow-Greenland, design-effect corrected)")
    breslow_day: BreslowDay | None = Field(description="test of one common odds ratio (null: not computable)")
    estimable: bool = Field(description="some stratum is informative")
    note: str | None = Field(None, description="why something is missing")
    by: str | None = Field(None, description="the strata: subset, or subset x seed")


class Block(Model):
    """One step's association with the answer."""

    table: Table = Field(description="the 2x2 table over all outputs the step applies to")
    pooled: Pooled = Field(description="its textbook statistics")
    stratified: Stratified = Field(description="the stratified test (the headline)")
    by_subset: dict[str, Block] | None = Field(None, description="the same per subset")
    by_seed: dict[str, Block] | None = Field(None, description="the same per seed")
    both_right: Share | None = Field(None, description="share of all outputs with step and answer right")
    answer_given_step_right: Share | None = Field(None, description="P(answer right | step right)")
    answer_given_step_wrong: Share | None = Field(None, description="P(answer right | step wrong)")


class Term(Model):
    estimable: bool | None = Field(None, description="the term could be fitted")
    note: str | None = Field(None, description="why not")
    coef: float | None = Field(None, description="log odds ratio")
    se: float | None = Field(None, description="its item-clustered standard error")
    p: Num = Field(None, description="its p")
    odds_ratio: float | None = Field(None, description="exp(coef): the step's odds ratio, the others held fixed")
    odds_ratio_ci95: Pair | None = Field(None, description="its 95 % interval")


class Regression(Model):
    model: str = Field(description="the model (in words)")
    n: int = Field(description="outputs fitted")
    clusters: int = Field(description="test items (the clusters of the standard errors)")
    covariates: list[str] = Field(description="fixed-effect factors (subset, seed)")
    dropped_levels: dict[str, list[str]] = Field(description="factor levels left out (every answer the same there)")
    terms: dict[str, Term] = Field(description="one term per step (the steps that combine others are left out)")
    estimable: bool = Field(description="a model was fitted")
    converged: bool | None = Field(None, description="the fit converged")


class PaperBlock(Open):
    """The same under the paper's definitions; also `<step>_accuracy` for each of its steps."""

    definitions: str = Field(description="the paper's definitions, in words")
    evaluated: int = Field(description="outputs with a <think> trace (the paper evaluated only those)")
    unevaluated: int = Field(description="outputs without")
    association: dict[str, Block] = Field(description="per step, as `association`")
    regression: Regression = Field(description="as `regression`")


class WithoutFlag(Model):
    left_out_outputs: int = Field(description="outputs of examples with the flag")
    left_out_items: int = Field(description="their test items")
    association: dict[str, Block] = Field(description="per step (tracekd's definitions), without them")
    paper: dict[str, Block] = Field(description="per step (the paper's definitions), without them")


class Statistics(Model):
    """What `score.evaluate.statistics` infers from per-example rows."""

    definitions: str = Field(description="tracekd's definitions, in words")
    rates: dict[str, Rate] = Field(description="every metric of the metric table (score/metrics.py) by name")
    association: dict[str, Block] = Field(description="per trace step: its association with the answer")
    regression: Regression = Field(description="logistic regression of the answer on the steps together")
    paper: PaperBlock = Field(description="the paper's definitions")
    without_flagged: dict[str, WithoutFlag] = Field(description="per decomposition flag: the tests without its examples")


class Compact(Open):
    """Answer and step accuracies of a part (a subset, a label); also `<step>_accuracy` per step."""

    n: int = Field(description="outputs")
    answer_accuracy: float = Field(description="answer accuracy")


class Status(Model):
    ok: int = Field(description="outputs with an answer")
    empty: int = Field(description="empty outputs")
    unparsable: int = Field(description="outputs without an answer")
    missing: int | None = Field(None, description="test examples without a prediction")


class ParsedCounts(Model):
    label: int = Field(description="outputs with a label found")
    evidence: int = Field(description="with an evidence step")
    answers: int = Field(description="with an answer")


class Scores(Statistics):
    """scores.json: one run of predictions scored (`tracekd evaluate`, each cell of `tracekd run`)."""

    n: int = Field(description="outputs scored")
    status: Status = Field(description="outputs by status")
    parsed: ParsedCounts = Field(description="outputs in which each step was found")
    answer: dict[str, Any] = Field(description="`accuracy`, and the mean of every number the answer scorer gives")
    steps: dict[str, Any] = Field(description="each step's accuracy; `evidence` and `evidence_tolerant`: mean P / R / F1 / exact")
    flags: dict[str, int] = Field(description="examples carrying each decomposition flag")
    seeds: list[Any] = Field(description="the seeds pooled (one: [0])")
    by_subset: dict[str, Compact] = Field(description="per subset")
    by_label: dict[str, Compact] = Field(description="per gold label")
    dataset_summary: dict[str, Any] = Field(description="the dataset's headline numbers (bAbI: tasks at 95 %)")
    dataset: str | None = Field(None, description="the dataset")
    trace_style: Literal["rule", "freeform"] | None = Field(None, description="how the steps were read")
    split: str | None = Field(None, description="the split scored (the teacher's own scores)")
    data: str | None = Field(None, description="the prepared folder")
    predictions: str | None = Field(None, description="the predictions file")


# -- checking and reading --------------------------------------------------------------------------
def invalid(e: ValidationError, path: str | Path, line: int | None = None, what: str = "") -> InputError:
    """A validation error as one line: the file (and line), the field, what is wrong."""
    err = e.errors()[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
    return InputError(f"{what or 'not the file this tracekd writes'}: {where or 'the top'}: "
                      f"{err['msg'].removeprefix('Value error, ')}", path, line)


def check_rows(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Refuse to write rows that are not `ExampleRow`s (a bug, named by the row's line)."""
    for i, row in enumerate(rows, start=1):
        try:
            ExampleRow.model_validate(row)
        except ValidationError as e:
            raise invalid(e, path, i, "a per-example row tracekd made does not fit its schema") from None


def check_scores(summary: dict[str, Any], path: str | Path) -> None:
    try:
        Scores.model_validate(summary)
    except ValidationError as e:
        raise invalid(e, path, what="a scores.json tracekd made does not fit its schema") from None


def read_rows(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The rows of a per-example JSONL file (the first `limit`), each checked."""
    out = []
    for lineno, row in read_jsonl(path):
        if limit is not None and len(out) >= limit:
            break
        try:
            ExampleRow.model_validate(row)
        except ValidationError as e:
            raise invalid(e, path, lineno, "not a per-example row tracekd writes") from None
        out.append(row)
    return out


def read_scores(path: str | Path) -> dict[str, Any]:
    """A scores.json, checked."""
    summary = read_json(path)
    try:
        Scores.model_validate(summary)
    except ValidationError as e:
        raise invalid(e, path, what="not the scores.json tracekd writes") from None
    return summary
