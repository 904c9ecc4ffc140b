"""The metric table: every rate tracekd reports, in one place.

Each `Metric` says how its per-output value is read from a score row (`score_output`), how it is
shown, whether higher is better and whether it is a trace step. `statistics` turns each into a
rate with an item-bootstrap interval (`rates` in scores.json and results.json); `summarize`, the
report's tables and plots and the terminal tables read the same entries. A new metric is one
entry of `METRICS`.

A value of None means the metric does not apply to that output's example (a step about the anchor
fact where the example has none): the rate is over the outputs it applies to. A step's value is
whether the output got that step right; `statistics` also tests its association with the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Row = dict[str, Any]


@dataclass(frozen=True)
class Metric:
    """One reported rate.

    `name`: its key in `rates` (a step's is `<step>_accuracy`); `column`: its header in tables;
    `title`: its name in words (plots, terminal); `of`: a score row -> its value (bool or number),
    None where it does not apply; `fmt`: `pct` (a proportion, shown in %) or `num`;
    `kind`: where tables place it - `output` (can the output be read), `step`, `evidence` (detail
    of the evidence step), `answer` (the outcome); `definitions`: `tracekd` or `paper` (a metric of
    the paper's definitions is reported beside tracekd's, not in its tables); `optional`: reported
    only when every output has a value (a number only some datasets' answer scorers give).

    For steps (`step` is the step's name): `in_regression` - a term of the regression of the
    answer on the steps (False for steps that combine others); `evidence_rule` - judged anew
    under each gold-evidence rule (`tracekd rescore`); `paper_step` - the paper defined it too
    (`score.steps.paper_steps`).
    """

    name: str
    column: str
    title: str
    of: Callable[[Row], Any]
    fmt: Literal["pct", "num"] = "pct"
    higher_is_better: bool = True
    kind: Literal["output", "step", "evidence", "answer"] = "output"
    definitions: Literal["tracekd", "paper"] = "tracekd"
    optional: bool = False
    step: str | None = None
    in_regression: bool = True
    evidence_rule: bool = False
    paper_step: bool = False

    def format(self, x: float | None) -> str:
        return pct(x) if self.fmt == "pct" else num(x)


def step(name: str, title: str, of: Callable[[Row], bool | None], **kw: Any) -> Metric:
    """A trace step: its accuracy is the share of outputs (it applies to) with the step right."""
    return Metric(f"{name}_accuracy", name, title, of, kind="step", step=name, **kw)


#: In the order of `rates`. The steps: label (Classification), evidence (Information Retrieval:
#: exactly the gold set), anchor / answer-bearing fact(s) among the cited ones (the two parts of
#: the evidence step; None where the example has none), and the full trace (label and evidence).
METRICS: list[Metric] = [
    Metric(
        "answer_accuracy",
        "answer",
        "answer accuracy (tracekd, strict)",
        lambda r: bool(r["answer"]["correct"]),
        kind="answer",
    ),
    Metric(
        "answer_lenient_accuracy",
        "lenient",
        "answer accuracy (lenient normalisation)",
        lambda r: None if r["answer"].get("lenient_correct") is None else bool(r["answer"]["lenient_correct"]),
        kind="answer",
        optional=True,
    ),
    Metric("parse_rate", "parse rate", "parse rate (an answer found)", lambda r: r["parsed"]["answers"] is not None),
    Metric(
        "evidence_f1",
        "evidence F1",
        "evidence F1 (against the gold set)",
        lambda r: r["evidence"]["f1"],
        kind="evidence",
    ),
    Metric(
        "upstream_answer_accuracy",
        "upstream",
        "answer accuracy (upstream CoTempQA scorer)",
        lambda r: None if r["answer"].get("upstream") is None else bool(r["answer"]["upstream"]["correct"]),
        kind="answer",
        definitions="paper",
        optional=True,
    ),
    step("label", "label step", lambda r: r["label_correct"], paper_step=True),
    step("evidence", "evidence step", lambda r: r["evidence"]["exact"], evidence_rule=True, paper_step=True),
    step("anchor", "anchor fact(s) retrieved", lambda r: r["anchor_retrieved"], in_regression=False),
    step("answer_fact", "answer-bearing fact(s) retrieved", lambda r: r["answer_fact_retrieved"], in_regression=False),
    step("trace", "full trace", lambda r: r["trace_correct"], in_regression=False, evidence_rule=True, paper_step=True),
]

#: where each kind of metric stands in a table, left to right (the outcome last)
KIND_ORDER = ("output", "step", "evidence", "answer")


def steps() -> list[Metric]:
    return [m for m in METRICS if m.step is not None]


def step_metric(name: str) -> Metric:
    return next(m for m in steps() if m.step == name)


def paper_steps() -> list[str]:
    """The steps the paper defined (it did not split the evidence step)."""
    return [m.step for m in METRICS if m.step is not None and m.paper_step]


def rule_steps() -> list[str]:
    """The steps an evidence rule changes (the others are judged the same under every rule)."""
    return [m.step for m in METRICS if m.step is not None and m.evidence_rule]


def reported(rows: list[Row]) -> list[Metric]:
    """The metrics these rows report: all but the optional ones some row has no value for."""
    return [m for m in METRICS if not m.optional or all(m.of(r) is not None for r in rows)]


def table_columns(definitions: str = "tracekd") -> list[Metric]:
    """The metrics of one definitions' rates table, in table order (by kind, then as listed)."""
    return sorted((m for m in METRICS if m.definitions == definitions), key=lambda m: KIND_ORDER.index(m.kind))


# -- formats --------------------------------------------------------------------------------------
def pct(x: float | None, unit: str = "") -> str:
    """A proportion in % (one decimal), `—` for none."""
    return "—" if x is None else f"{100 * x:.1f}{unit}"


def num(x: float | None, fmt: str = ".3g") -> str:
    return "—" if x is None else format(x, fmt)
