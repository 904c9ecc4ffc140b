"""The files `tracekd evaluate` writes, as pydantic models: a per-example row of
`scores.examples.jsonl` (`ExampleRow`) and `scores.json` (`Scores`), with the statistics blocks
they share with results.json.

Every row and every summary is validated before it is written (`check_rows`, `check_scores`)
and when it is read back (`read_rows`, `read_scores`): a hand-edited file, or one an older tracekd
wrote, is one InputError naming the file, the line and the field. What is written is the dict the
scorer made, so validation changes no byte. docs/outputs.md lists every field (made from the
docstring under each field here; `tests/score/test_outputs.py` keeps it current).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from tracekd.errors import InputError
from tracekd.jsonio import read_json, read_jsonl

Num = float | None  # a statistic that is undefined for some data (null in the file)
Pair = list[Num]  # [low, high] of a 95 % interval (nulls when there is none)
Table = list[list[int]]  # a 2x2 table [[a, b], [c, d]]: rows step right / wrong, columns answer right / wrong


class Model(BaseModel):
    """A fixed shape: an unknown key is refused (a typo, or a file of another version)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class Open(BaseModel):
    """A shape with named keys plus others a part of tracekd adds (a dataset scorer, the metric table)."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)


# -- one output ------------------------------------------------------------------------------------
class Gold(Model):
    label: str
    """the gold label"""
    evidence: list[str]
    """texts of the gold evidence items"""
    anchor: list[str]
    """texts of the anchor items"""
    answer_facts: list[str]
    """texts of the answer-bearing items"""
    answers: list[str]
    """the gold answers"""


class Parsed(Model):
    label: str | None
    """the label the output states (null: none found)"""
    evidence: list[str] | None
    """the evidence items it cites (null: no evidence step)"""
    answers: list[str] | None
    """its answers (null: none found)"""


class AnswerScores(Open):
    """The dataset's answer scorer's numbers (`score/answers.py`): `correct` and its own."""

    correct: bool
    """the answer is right (the answer scorer's verdict; the 2x2 tables use it)"""


class EvidenceScore(Model):
    precision: float
    """cited items that are gold / cited items"""
    recall: float
    """gold items cited / gold items"""
    f1: float
    """F1 of the two"""
    exact: bool
    """every cited item matches a context item and the matched set is the gold set"""
    matched: list[str]
    """context ids the cited items matched"""
    unmatched: int
    """cited items matching no context item"""


class PaperSteps(Model):
    label_correct: bool
    """the gold label occurs in the trace's first sentence"""
    evidence_correct: bool
    """a gold fact (one containing a gold answer) occurs verbatim in the trace (the paper's stated rule)"""
    trace_correct: bool
    """both"""
    by_rule: dict[str, dict[str, bool]] = {}
    """the evidence and trace steps under each named rule: `stated`, `any-fact` (any context fact
    occurs verbatim), `authors-code` (the authors' get_confusion_matrices; `rescore --authors-csv`)"""


class ExampleRow(Model):
    """One line of scores.examples.jsonl: everything tracekd measures about one output."""

    id: str
    """the example id"""
    subset: str
    """the example's subset"""
    label: str
    """its gold label"""
    question: str
    """its question"""
    gold: Gold
    """its gold decomposition, as texts"""
    flags: list[str]
    """the decomposition's flags for the example"""
    status: Literal["ok", "empty", "unparsable", "missing"]
    """ok; empty output; unparsable (no answer found); missing (no prediction, with --allow-missing)"""
    parsed: Parsed
    """what the parser (or the free-form reader) found in the output"""
    parse_flags: list[str] = []
    """how the output was read when it broke the template: `unclosed_think` (a <think> block never
    closed; its answer read from its last list), `empty_think` (a <think> block with no trace)"""
    answer: AnswerScores
    """the answer scores"""
    label_correct: bool
    """the label step is right (tracekd's definition)"""
    evidence: EvidenceScore
    """the evidence step, exact text match"""
    evidence_tolerant: EvidenceScore
    """the evidence step, tolerant match (token F1 >= 0.9)"""
    anchor_retrieved: bool | None
    """every anchor item is cited (null: the example has none)"""
    answer_fact_retrieved: bool | None
    """every answer-bearing item is cited (null: none)"""
    trace_correct: bool
    """label right and evidence exactly the gold set"""
    paper: PaperSteps | None
    """the paper's definitions (null: no <think> trace, not evaluated)"""
    output: str
    """the model's output"""


# -- statistics (scores.json and results.json groups) -----------------------------------------------
class Rate(Model):
    mean: Num
    """the rate over all outputs of all seeds (a ratio of sums)"""
    ci95: Pair
    """its 95 % interval (bootstrap over test items)"""
    method: Literal["bootstrap", "wilson"] | None
    """how the interval was made"""
    sd: Num
    """sd of the per-seed values (null with one seed)"""
    per_seed: list[Num]
    """the rate of each seed"""


class Share(Model):
    p: Num
    """the ratio"""
    ci95: Pair
    """its 95 % interval"""
    method: Literal["bootstrap", "wilson"] | None
    """how the interval was made"""
    items: int
    """test items the ratio is over"""


class Wilson(Model):
    p: Num
    """k / n"""
    k: float
    """successes"""
    n: int
    """trials"""
    ci95: Pair
    """the Wilson score interval"""


class Pooled(Model):
    """One 2x2 table's textbook statistics (they treat every output as independent)."""

    table: Table
    """the table"""
    n: int
    """outputs in it"""
    chi2: Num
    """Pearson chi-square (the paper's test)"""
    chi2_p: Num
    """its p"""
    chi2_yates: Num
    """with Yates' correction"""
    chi2_yates_p: Num
    """its p"""
    phi: Num
    """phi coefficient"""
    fisher_p: Num
    """Fisher's exact test p"""
    odds_ratio: Num
    """sample odds ratio (a*d / b*c)"""
    odds_ratio_ci95: Pair
    """Woolf 95 % interval"""
    p_answer_given_step_correct: Wilson
    """P(answer right | step right)"""
    p_answer_given_step_wrong: Wilson
    """P(answer right | step wrong)"""
    test: str | None = None
    """which test this is (in words)"""


class BreslowDay(Model):
    chi2: float
    """Breslow-Day statistic (design-effect corrected)"""
    df: int
    """degrees of freedom (strata - 1)"""
    p: float
    """its p"""


class Exact(Model):
    """The exact conditional test of a common odds ratio (R's mantelhaen.test(exact = TRUE))."""

    test: str
    """its name"""
    p: float
    """two-sided p: the null probabilities of sums not more likely than the observed one"""
    odds_ratio: float
    """the conditional maximum-likelihood common odds ratio (0 or infinite at the support's ends)"""
    odds_ratio_ci95: list[float]
    """its exact 95 % interval"""


class Stratified(Model):
    """The Cochran-Mantel-Haenszel test over strata, the Mantel-Haenszel odds ratio, Breslow-Day."""

    test: str
    """Cochran-Mantel-Haenszel"""
    strata: int
    """strata"""
    informative_strata: int
    """strata where the step and the answer both vary"""
    left_out: dict[str, Table]
    """the other strata's tables (they carry no information)"""
    left_out_outputs: int
    """outputs in them"""
    outputs: int
    """outputs in the informative strata"""
    items: int
    """test items in them"""
    margins: dict[str, int] | None
    """step right / wrong, answer right / wrong in them"""
    chi2: Num
    """CMH chi-square, divided by the design effect"""
    p: Num
    """its p"""
    chi2_unadjusted: Num
    """CMH chi-square before the design effect"""
    design_effect: Num
    """variance inflation from the seeds of one item (1: one output per item)"""
    odds_ratio: Num
    """Mantel-Haenszel common odds ratio"""
    odds_ratio_ci95: Pair
    """its 95 % interval (Robins-Breslow-Greenland, design-effect corrected)"""
    min_expected: Num = None
    """the smallest expected cell (row x column total / n) of the informative strata"""
    exact: Exact | None = None
    """the exact conditional test, when some expected cell is below 5 and every output is its own item"""
    breslow_day: BreslowDay | None
    """test of one common odds ratio (null: not computable)"""
    estimable: bool
    """some stratum is informative"""
    note: str | None = None
    """why something is missing"""
    by: str | None = None
    """the strata: subset, or subset x seed"""


class Block(Model):
    """One step's association with the answer."""

    table: Table
    """the 2x2 table over all outputs the step applies to"""
    pooled: Pooled
    """its textbook statistics"""
    stratified: Stratified
    """the stratified test (the headline)"""
    by_subset: dict[str, Block] | None = None
    """the same per subset"""
    by_seed: dict[str, Block] | None = None
    """the same per seed"""
    by_model: dict[str, Block] | None = None
    """the same per model (several models' outputs pooled: `tracekd rescore`)"""
    both_right: Share | None = None
    """share of all outputs with step and answer right"""
    answer_given_step_right: Share | None = None
    """P(answer right | step right)"""
    answer_given_step_wrong: Share | None = None
    """P(answer right | step wrong)"""


class Term(Model):
    """One step's term in the regression."""

    estimable: bool | None = None
    """the term could be fitted"""
    note: str | None = None
    """why not"""
    coef: float | None = None
    """log odds ratio"""
    se: float | None = None
    """its item-clustered standard error"""
    odds_ratio: float | None = None
    """exp(coef): the step's odds ratio, the others held fixed"""
    odds_ratio_ci95: Pair | None = None
    """its 95 % interval"""
    p: Num = None
    """the Wald test's p"""


class Regression(Model):
    """The answer's logistic regression on the steps together."""

    model: str
    """the model (in words)"""
    n: int
    """outputs fitted"""
    clusters: int
    """test items (the clusters of the standard errors)"""
    covariates: list[str]
    """fixed-effect factors (subset, seed)"""
    dropped_levels: dict[str, list[str]]
    """factor levels left out (every answer the same there)"""
    terms: dict[str, Term]
    """one term per step (the steps that combine others are left out)"""
    estimable: bool
    """a model was fitted"""
    converged: bool | None = None
    """the fit converged"""


class TableOnly(Model):
    table: Table
    """the 2x2 table"""


class RuleSteps(Model):
    """The paper's evidence and trace steps under one evidence rule."""

    evidence_accuracy: float
    """outputs whose evidence step is right under the rule / all outputs"""
    trace_accuracy: float
    """outputs whose label and evidence are right / all outputs"""
    association: dict[str, TableOnly]
    """the 2x2 tables of the evidence and the trace step (evaluated outputs)"""


class PaperBlock(Open):
    """The same under the paper's definitions; also `<step>_accuracy` for each of its steps."""

    definitions: str
    """the paper's definitions, in words"""
    evaluated: int
    """outputs with a <think> trace (the paper evaluated only those)"""
    unevaluated: int
    """outputs without"""
    association: dict[str, Block]
    """per step, as `association`"""
    regression: Regression
    """as `regression`"""
    rule: str = "stated"
    """the evidence rule of `association` (the paper's stated rule)"""
    ci95: dict[str, Pair] = {}
    """each `<step>_accuracy`'s 95 % interval (bootstrap over test items)"""
    rules: dict[str, RuleSteps] = {}
    """the evidence and trace steps under each named evidence rule (`stated`, `any-fact`, `authors-code`)"""


class WithoutFlag(Model):
    left_out_outputs: int
    """outputs of examples with the flag"""
    left_out_items: int
    """their test items"""
    association: dict[str, Block]
    """per step (tracekd's definitions), without them"""
    paper: dict[str, Block]
    """per step (the paper's definitions), without them"""


class Statistics(Model):
    """What `score.evaluate.statistics` infers from per-example rows."""

    grouped_by: Literal["model"] | None = None
    """present when several models' outputs are pooled: the groups (`seeds`) are models"""
    definitions: str
    """tracekd's definitions, in words"""
    rates: dict[str, Rate]
    """every metric of the metric table (score/metrics.py) by name"""
    association: dict[str, Block]
    """per trace step: its association with the answer"""
    regression: Regression
    """logistic regression of the answer on the steps together"""
    paper: PaperBlock
    """the paper's definitions"""
    without_flagged: dict[str, WithoutFlag]
    """per decomposition flag: the tests without its examples"""


class Compact(Open):
    """Answer and step accuracies of a part (a subset, a label); also `<step>_accuracy` per step."""

    n: int
    """outputs"""
    answer_accuracy: float
    """answer accuracy"""


class Status(Model):
    ok: int
    """outputs with an answer"""
    empty: int
    """empty outputs"""
    unparsable: int
    """outputs without an answer"""
    missing: int | None = None
    """test examples without a prediction (rescored files: none)"""


class ParsedCounts(Model):
    label: int
    """outputs with a label found"""
    evidence: int
    """with an evidence step"""
    answers: int
    """with an answer"""
    flags: dict[str, int] = {}
    """outputs per parse flag (`unclosed_think`, `empty_think`; docs/scoring.md)"""


class Scores(Statistics):
    """scores.json: one run of predictions scored (`tracekd evaluate`, each cell of `tracekd run`)."""

    n: int
    """outputs scored"""
    status: Status
    """outputs by status"""
    parsed: ParsedCounts
    """outputs in which each step was found"""
    answer: dict[str, Any]
    """`accuracy`, and the mean of every number the answer scorer gives"""
    steps: dict[str, Any]
    """each step's accuracy; `evidence` and `evidence_tolerant`: mean P / R / F1 / exact"""
    flags: dict[str, int]
    """examples carrying each decomposition flag"""
    seeds: list[Any]
    """the seeds pooled (one: [0])"""
    by_subset: dict[str, Compact]
    """per subset"""
    by_label: dict[str, Compact]
    """per gold label"""
    dataset_summary: dict[str, Any]
    """the dataset's headline numbers (bAbI: tasks at 95 %)"""
    dataset: str | None = None
    """the dataset"""
    trace_style: Literal["rule", "freeform"] | None = None
    """how the steps were read"""
    split: str | None = None
    """the split scored (the teacher's own scores)"""
    data: str | None = None
    """the prepared folder"""
    predictions: str | None = None
    """the predictions file"""


# -- checking and reading --------------------------------------------------------------------------
def invalid(e: ValidationError, path: str | Path, line: int | None = None, what: str = "") -> InputError:
    """A validation error as one line: the file (and line), the field, what is wrong."""
    err = e.errors()[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
    return InputError(
        f"{what or 'not the file this tracekd writes'}: {where or 'the top'}: "
        f"{err['msg'].removeprefix('Value error, ')}",
        path,
        line,
    )


def validated(model: type[BaseModel], obj: Any, path: str | Path, what: str, line: int | None = None) -> Any:
    """`obj` itself, once it fits `model`; else one InputError naming the file (line) and field."""
    try:
        model.model_validate(obj)
    except ValidationError as e:
        raise invalid(e, path, line, what) from None
    return obj


def check_rows(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Refuse to write rows that are not `ExampleRow`s (a bug, named by the row's line)."""
    for i, row in enumerate(rows, start=1):
        validated(ExampleRow, row, path, "a per-example row tracekd made does not fit its schema", i)


def check_scores(summary: dict[str, Any], path: str | Path) -> None:
    validated(Scores, summary, path, "a scores.json tracekd made does not fit its schema")


def read_rows(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The rows of a per-example JSONL file (the first `limit`), each checked."""
    out: list[dict[str, Any]] = []
    for lineno, row in read_jsonl(path):
        if limit is not None and len(out) >= limit:
            break
        out.append(validated(ExampleRow, row, path, "not a per-example row tracekd writes", lineno))
    return out


def read_scores(path: str | Path) -> dict[str, Any]:
    """A scores.json, checked."""
    return validated(Scores, read_json(path), path, "not the scores.json tracekd writes")
