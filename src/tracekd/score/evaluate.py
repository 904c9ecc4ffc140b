"""Score model outputs against prepared test examples: answers, trace steps, association.

`score_output` scores one output (a row: answer scores, the trace steps, the example's flags);
`summarize` aggregates rows (overall, per subset and label) with `statistics`, which reports every
metric of the metric table (`score/metrics.py`); `evaluate` is the `tracekd evaluate` command:
predictions JSONL (`id`, `output`) joined with `DIR/test.jsonl` by id.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from tracekd.data import Dataset, Example, get_dataset
from tracekd.data.reading import check_unique_ids
from tracekd.errors import InputError
from tracekd.jsonio import check_published, read_jsonl, refuse_overwriting, remove_stale_temps, staged
from tracekd.layout import MANIFEST, PREPARED, TEST, examples_of
from tracekd.lock import folder_lock
from tracekd.score import metrics
from tracekd.score.answers import score_answer
from tracekd.score.freeform import freeform_trace
from tracekd.score.outputs import check_rows, check_scores
from tracekd.score.stats import (
    ItemBootstrap,
    association,
    item_codes,
    regression,
    stratified,
    table_2x2,
    wilson,
)
from tracekd.score.steps import PAPER_RULES, paper_steps, score_steps
from tracekd.traces.parse import parse, think_flags
from tracekd.traces.render import Trace


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def score_output(ds: Dataset, ex: Example, output: str, freeform: bool = False) -> dict[str, Any]:
    """Everything tracekd measures about one output. `freeform`: the trace is free text (a
    teacher's reasoning), its steps read by `score/freeform.py` instead of the parser."""
    parsed = freeform_trace(output, ex, ds.label_sentence) if freeform else parse(output, ds.label_sentence)
    if not output.strip():
        status = "empty"
    elif parsed.answers is None:
        status = "unparsable"
    else:
        status = "ok"
    steps = score_steps(parsed, ex)
    return {
        "id": ex.id,
        "subset": ex.subset,
        "label": ex.label,
        "question": ex.question,
        "gold": {
            "label": ex.label,
            "evidence": ex.texts(ex.evidence),
            "anchor": ex.texts(ex.anchor),
            "answer_facts": ex.texts(ex.answer_facts),
            "answers": list(ex.answers),
        },
        "flags": list(ex.flags),
        "status": status,
        "parsed": {
            "label": parsed.label,
            "evidence": None if parsed.evidence is None else list(parsed.evidence),
            "answers": None if parsed.answers is None else list(parsed.answers),
        },
        "parse_flags": [] if freeform else list(think_flags(output)),
        "answer": score_answer(ds, parsed.answers, ex, output),
        **steps,
        "paper": paper_steps(output, ex),
        "output": output,
    }


def rejudge_steps(row: dict[str, Any], ex: Example) -> dict[str, Any]:
    """The same output's row with its trace steps judged against another decomposition of its
    example (another evidence rule); the answer scores are kept."""
    p = row["parsed"]
    parsed = Trace(
        p["label"],
        None if p["evidence"] is None else tuple(p["evidence"]),
        None if p["answers"] is None else tuple(p["answers"]),
    )
    gold = {**row["gold"], "label": ex.label, "evidence": ex.texts(ex.evidence)}
    return {**row, "label": ex.label, "gold": gold, "flags": list(ex.flags), **score_steps(parsed, ex)}


def _step_flags(rows: list[dict[str, Any]]) -> dict[str, list[bool | None]]:
    """Per step of the metric table, each row's flag (None: the step does not apply to that row's example)."""
    return {m.step: [m.of(r) for r in rows] for m in metrics.METRICS if m.step is not None}


DEFINITIONS = {
    "tracekd": "tracekd's definitions (docs/scoring.md): the normalised label equals the gold one; the cited "
    "evidence is exactly the gold set; the trace is both; the answer is tracekd's strict scorer's",
    "paper": "the paper's definitions: the gold label occurs in the trace's first sentence; a gold fact (one "
    "containing a gold answer) occurs verbatim in the trace (the paper's stated evidence rule, `stated`; the "
    "`any-fact` and `authors-code` rules beside it); the trace is both; the answer is the upstream scorer's; "
    "outputs without a <think> trace are not evaluated (not in the tables; in the denominator of shares)",
}


def _means(dicts: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean of every numeric / boolean field, recursing into nested dicts."""
    out: dict[str, Any] = {}
    if not dicts:
        return out
    for key in dicts[0]:
        vals = [d[key] for d in dicts if key in d]
        if all(isinstance(v, dict) for v in vals):
            out[key] = _means(vals)
        elif all(isinstance(v, (bool, int, float)) for v in vals):
            out[key] = mean(float(v) for v in vals)
    return out


def _step_rates(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Each step's accuracy over the rows it applies to."""
    return {m.name: applicable_mean(m.of(r) for r in rows) for m in metrics.steps()}


def _breakdown(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Answer and step accuracies (the breakdowns per subset and per label)."""
    return {"n": len(rows), "answer_accuracy": mean(r["answer"]["correct"] for r in rows), **_step_rates(rows)}


def applicable_mean(flags) -> float | None:
    """The mean over the rows a step applies to (None where it applies to none)."""
    kept = [f for f in flags if f is not None]
    return mean(kept) if kept else None


def subset_rates(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Answer and step accuracies per subset."""
    by_subset: dict[str, list] = defaultdict(list)
    for r in rows:
        by_subset[r["subset"]].append(r)
    return {k: _breakdown(v) for k, v in sorted(by_subset.items())}


def step_scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each step's accuracy and the evidence scores' means."""
    return {
        **_step_rates(rows),
        "evidence": _means([r["evidence"] for r in rows]),
        "evidence_tolerant": _means([r["evidence_tolerant"] for r in rows]),
    }


def rates_of(rows: list[dict[str, Any]], names: list[str] | None = None) -> dict[str, Any]:
    """Each yes/no metric's rate (of `names`, default all) over the outputs it applies to, with its
    95 % Wilson interval: the intervals of one file of outputs, one output per test item (no seeds
    to cluster); `statistics` gives the item-bootstrap intervals of a run or a pool."""
    out = {}
    for m in (m for m in metrics.METRICS if names is None or m.name in names):
        values = [v for v in (m.of(r) for r in rows) if v is not None]
        if values and all(isinstance(v, bool) for v in values):
            w = wilson(sum(values), len(values))
            lo, hi = w["ci95"]  # the interval holds the rate (rounding can put k = n a hair below it)
            out[m.name] = {"mean": w["p"], "ci95": [min(lo, w["p"]), max(hi, w["p"])], "method": "wilson", "n": w["n"]}
    return out


def rule_view(rows: list[dict[str, Any]], inference: bool = True) -> dict[str, Any]:
    """What an evidence rule changes (rows judged under it): the step scores and their association
    (with `inference`, the tests of `statistics` and the changed steps' rates with their
    intervals; without, the 2x2 tables of `step_tables`)."""
    if not inference:
        changed = [m.name for m in metrics.steps() if m.evidence_rule]
        return {
            "steps": step_scores(rows),
            "association": step_tables(rows)["association"],
            "rates": rates_of(rows, changed),
        }
    tests = statistics({0: rows}, steps_only=True)
    return {"steps": step_scores(rows), "association": tests["association"], "rates": tests["rates"]}


def summarize(
    rows: list[dict[str, Any]],
    ds: Dataset,
    inference: bool = True,
    by_model: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """One run's scores overall, per subset and per label, with the statistics of `statistics`.
    Without `inference` (a file that is also pooled with others, whose statistics are reported on
    the pool): each step's 2x2 table (`step_tables`) in place of the statistics. `by_model`: the
    same rows split by the model that wrote them (several models pooled): the tests are stratified
    by subset x model and the regression has the model as a covariate."""
    if not rows:
        raise InputError("nothing to score: no predictions")
    status = Counter(r["status"] for r in rows)
    parsed: dict[str, Any] = {
        k: sum(r["parsed"][k] is not None for r in rows) for k in ("label", "evidence", "answers")
    }
    parsed["flags"] = dict(sorted(Counter(f for r in rows for f in r.get("parse_flags", ())).items()))
    by_label: dict[str, list] = defaultdict(list)
    for r in rows:
        by_label[r["label"]].append(r)
    subset_summary = subset_rates(rows)
    return {
        "n": len(rows),
        "status": {k: status.get(k, 0) for k in ("ok", "empty", "unparsable")},
        "parsed": parsed,
        "answer": {"accuracy": mean(r["answer"]["correct"] for r in rows), **_means([r["answer"] for r in rows])},
        "steps": step_scores(rows),
        "flags": dict(sorted(Counter(f for r in rows for f in r.get("flags", ())).items())),
        **(_inference(rows, by_model) if inference else {**step_tables(rows), "rates": rates_of(rows)}),
        "by_subset": subset_summary,
        "by_label": {k: _breakdown(v) for k, v in sorted(by_label.items())},
        "dataset_summary": ds.answer_summary({k: v["answer_accuracy"] for k, v in subset_summary.items()}),
    }


def _inference(rows: list[dict[str, Any]], by_model: dict[str, list[dict[str, Any]]] | None) -> dict[str, Any]:
    """`statistics` of one run's rows, grouped by model when several models wrote them."""
    if by_model and len(by_model) > 1:
        return statistics(by_model, group="model")
    return statistics({0: rows})


# -- statistics from per-example rows ----------------------------------------------------------------
def step_tables(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each step's 2x2 table of step right/wrong x answer right/wrong, under tracekd's definitions
    (over the rows the step applies to) and the paper's (over the outputs it evaluates), without
    tests: the part of `statistics` that costs nothing."""
    y = np.array([bool(r["answer"]["correct"]) for r in rows])
    evaluated = np.array([r["paper"] is not None for r in rows])
    y_paper = np.array([bool((r["answer"].get("upstream") or r["answer"])["correct"]) for r in rows])
    steps = {
        k: table_2x2([bool(f) for f, a in zip(v, y) if f is not None], [a for f, a in zip(v, y) if f is not None])
        for k, v in _step_flags(rows).items()
    }
    paper = {
        k: table_2x2([bool(r["paper"][f"{k}_correct"]) for r in rows if r["paper"]], y_paper[evaluated])
        for k in metrics.paper_steps()
    }
    return {
        "definitions": DEFINITIONS["tracekd"],
        "association": {k: {"table": t} for k, t in steps.items()},
        "paper": {
            "definitions": DEFINITIONS["paper"],
            "evaluated": int(evaluated.sum()),
            "unevaluated": int((~evaluated).sum()),
            **{
                f"{k}_accuracy": float(np.mean([bool(r["paper"] and r["paper"][f"{k}_correct"]) for r in rows]))
                for k in paper
            },
            "association": {k: {"table": t} for k, t in paper.items()},
            **paper_rules(rows, y_paper),
        },
    }


def paper_rules(rows: list[dict[str, Any]], y_paper: np.ndarray) -> dict[str, Any]:
    """The paper's evidence and trace steps under each evidence rule the rows were judged under
    (`score.steps.PAPER_RULES`; `authors-code` only where every evaluated row has it): accuracy over
    all outputs and the 2x2 tables over the evaluated ones; `rule`: the primary one's name."""
    evaluated = [i for i, r in enumerate(rows) if r["paper"]]
    out: dict[str, Any] = {"rule": PAPER_RULES[0], "rules": {}}
    for rule in PAPER_RULES:
        if not evaluated or any(rule not in rows[i]["paper"].get("by_rule", {}) for i in evaluated):
            continue
        flags = {i: rows[i]["paper"]["by_rule"][rule] for i in evaluated}
        y = [bool(y_paper[i]) for i in evaluated]
        out["rules"][rule] = {
            **{
                f"{k}_accuracy": sum(f[f"{k}_correct"] for f in flags.values()) / len(rows)
                for k in ("evidence", "trace")
            },
            "association": {
                k: {"table": table_2x2([flags[i][f"{k}_correct"] for i in evaluated], y)} for k in ("evidence", "trace")
            },
        }
    return out


def _block(
    x: np.ndarray,
    y: np.ndarray,
    subset: np.ndarray,
    seed: np.ndarray,
    item: np.ndarray,
    detail: bool = True,
    group: str = "seed",
) -> dict[str, Any]:
    """One step's association: the pooled table with its textbook statistics (the paper's test),
    the stratified test (by subset, and by subset x seed when there are several seeds; `group`
    names what the second factor is: `seed`, or `model` when several models' outputs are pooled)
    and, with `detail`, the same per subset and per seed (model)."""
    multi = len(np.unique(seed)) > 1
    strata = np.char.add(np.char.add(subset.astype(str), f" | {group} "), seed.astype(str)) if multi else subset
    table = table_2x2(x, y)
    out: dict[str, Any] = {
        "table": table,
        "pooled": {
            **association(table),
            "test": "Pearson chi-square on the table pooled over subsets and seeds (the paper's test)",
        },
        "stratified": {**stratified(x, y, strata, item), "by": f"subset x {group}" if multi else "subset"},
    }
    if detail and len(np.unique(subset)) > 1:
        out["by_subset"] = {
            str(s): _block(x[m], y[m], subset[m], seed[m], item[m], False, group)
            for s in np.unique(subset)
            for m in [subset == s]
        }
    if detail and multi:
        out[f"by_{group}"] = {
            str(s): _block(x[m], y[m], subset[m], seed[m], item[m], False, group)
            for s in np.unique(seed)
            for m in [seed == s]
        }
    return out


def _shares(prefix: str, x: np.ndarray, y: np.ndarray, evaluated: np.ndarray) -> dict[str, tuple]:
    """The bootstrap ratios of one step: both right (share of all outputs: the paper's headline
    quantity), P(answer right | step right) and P(answer right | step wrong) among evaluated outputs."""
    ones = np.ones(len(x))
    return {
        f"{prefix}both_right": (x & y & evaluated, ones),
        f"{prefix}answer_given_step_right": (x & y & evaluated, x & evaluated),
        f"{prefix}answer_given_step_wrong": (~x & y & evaluated, ~x & evaluated),
    }


STATISTICS_KEYS = ("seeds", "definitions", "rates", "association", "regression", "paper", "without_flagged")


def statistics(
    rows_by_seed: dict[Any, list[dict[str, Any]]], steps_only: bool = False, group: str = "seed"
) -> dict[str, Any]:
    """Everything tracekd infers from per-example rows (one list per seed, rows keyed by example
    id; the seeds of one example are the same test item; `group="model"`: one list per model, the
    models' outputs on one example the same test item, strata subset x model): rates with item-bootstrap intervals,
    per step the 2x2 tables and tests (pooled, stratified, per subset, per seed), the regression of
    the answer on the steps, the same under the paper's definitions, and the association without
    examples carrying each flag (`flags` of a row). `steps_only`: only the association of
    tracekd's steps (what another evidence rule changes; `rule_view`)."""
    seeds = list(rows_by_seed)
    rows = [r for s in seeds for r in rows_by_seed[s]]
    seed = np.repeat(np.array([str(s) for s in seeds]), [len(rows_by_seed[s]) for s in seeds])
    item = item_codes([r["id"] for r in rows])
    subset = np.array([r["subset"] for r in rows])
    y = np.array([bool(r["answer"]["correct"]) for r in rows])
    raw_steps = _step_flags(rows)
    applies = {k: np.array([f is not None for f in v]) for k, v in raw_steps.items()}
    steps = {k: np.array([bool(f) for f in v]) for k, v in raw_steps.items()}
    evaluated = np.array([r["paper"] is not None for r in rows])
    paper = {
        k: np.array([bool(r["paper"] and r["paper"][f"{k}_correct"]) for r in rows]) for k in metrics.paper_steps()
    }
    upstream = [r["answer"].get("upstream") for r in rows]
    y_paper = np.array([bool((u or r["answer"])["correct"]) for u, r in zip(upstream, rows)])
    everyone = np.ones(len(rows), dtype=bool)
    ones = everyone.astype(float)

    ratios: dict[str, tuple] = {}  # every metric of the table: the mean over the outputs it applies to
    rule_steps = metrics.rule_steps()
    for m in metrics.reported(rows):
        if not steps_only or m.step in rule_steps:
            values = [m.of(r) for r in rows]
            ratios[m.name] = ([0.0 if v is None else float(v) for v in values], [float(v is not None) for v in values])
        if m.step is not None:
            ratios.update(_shares(f"{m.step}:", steps[m.step], y, applies[m.step]))
    for k, x in {} if steps_only else paper.items():
        ratios[f"paper:{k}_accuracy"] = (x, ones)
        ratios.update(_shares(f"paper:{k}:", x, y_paper, evaluated))
    ci = ItemBootstrap(item).intervals(ratios)

    def steps_block(
        flags: dict[str, np.ndarray],
        answer: np.ndarray,
        keep: np.ndarray,
        prefix: str,
        applicable: dict[str, np.ndarray] | None = None,
    ) -> dict[str, Any]:
        out = {}
        for k, x in flags.items():
            m = keep & applicable[k] if applicable else keep
            b = _block(x[m], answer[m], subset[m], seed[m], item[m], group=group)
            for share in ("both_right", "answer_given_step_right", "answer_given_step_wrong"):
                b[share] = ci[f"{prefix}{k}:{share}"]
            out[k] = b
        return out

    if steps_only:
        rule_rates = {
            name: {"mean": ci[name]["p"], "ci95": ci[name]["ci95"], "method": ci[name]["method"]}
            for name in ratios
            if ":" not in name
        }
        return {"association": steps_block(steps, y, everyone, "", applies), "rates": rule_rates}
    by_seed = [seed == str(s) for s in seeds]
    rates = {}
    for name, (num, den) in ratios.items():
        if ":" in name:
            continue
        num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
        # a seed with nothing to count (no evaluated output) has no rate: null, left out of the sd
        per_seed = [float(num[m].sum() / den[m].sum()) if den[m].sum() > 0 else None for m in by_seed]
        defined = [v for v in per_seed if v is not None]
        rates[name] = {
            "mean": ci[name]["p"],
            "ci95": ci[name]["ci95"],
            "method": ci[name]["method"],
            "sd": float(np.std(defined, ddof=1)) if len(defined) > 1 else None,
            "per_seed": per_seed,
        }

    def model(flags: dict[str, np.ndarray], answer: np.ndarray, keep: np.ndarray) -> dict[str, Any]:
        factors = {"subset": subset[keep], **({group: seed[keep]} if len(seeds) > 1 else {})}
        terms = {k: x[keep] for k, x in flags.items() if metrics.step_metric(k).in_regression}
        return regression(answer[keep], terms, factors, item[keep])

    paper_block: dict[str, Any] = {
        "definitions": DEFINITIONS["paper"],
        "evaluated": int(evaluated.sum()),
        "unevaluated": int((~evaluated).sum()),
    }
    paper_block.update({f"{k}_accuracy": ci[f"paper:{k}_accuracy"]["p"] for k in paper})
    paper_block["ci95"] = {f"{k}_accuracy": ci[f"paper:{k}_accuracy"]["ci95"] for k in paper}
    paper_block.update(paper_rules(rows, y_paper))
    paper_block["association"] = steps_block(paper, y_paper, evaluated, "paper:")
    paper_block["regression"] = model(paper, y_paper, evaluated)
    return {
        "seeds": seeds,
        **({"grouped_by": group} if group != "seed" else {}),
        "definitions": DEFINITIONS["tracekd"],
        "rates": rates,
        "association": steps_block(steps, y, everyone, "", applies),
        "regression": model(steps, y, everyone),
        "paper": paper_block,
        "without_flagged": _without_flagged(
            rows, steps, applies, y, paper, y_paper, evaluated, subset, seed, item, group
        ),
    }


def _without_flagged(rows, steps, applies, y, paper, y_paper, evaluated, subset, seed, item, group) -> dict[str, Any]:
    """Per flag that some rows carry (e.g. `label_contradicts_dates`): the stratified association
    of every step over the rows without it."""
    out = {}
    for flag in sorted({f for r in rows for f in r.get("flags", ())}):
        clean = np.array([flag not in r.get("flags", ()) for r in rows])
        out[flag] = {
            "left_out_outputs": int((~clean).sum()),
            "left_out_items": len(set(item[~clean])),
            "association": {
                k: _block(x[m], y[m], subset[m], seed[m], item[m], False, group)
                for k, x in steps.items()
                for m in [clean & applies[k]]
            },
            "paper": {
                k: _block(
                    x[clean & evaluated],
                    y_paper[clean & evaluated],
                    subset[clean & evaluated],
                    seed[clean & evaluated],
                    item[clean & evaluated],
                    False,
                    group,
                )
                for k, x in paper.items()
            },
        }
    return out


# -- tracekd evaluate --------------------------------------------------------------------------------
def load_test_set(data_dir: str | Path) -> tuple[list[Example], Dataset]:
    path = Path(data_dir) / TEST
    check_published(data_dir)
    examples = [Example.from_record(rec, path, lineno) for lineno, rec in read_jsonl(path)]
    if not examples:
        raise InputError("test set is empty", path)
    names = {ex.dataset for ex in examples}
    if len(names) != 1:
        raise InputError(f"test set mixes datasets {sorted(names)}", path)
    check_unique_ids(examples, path)
    ds = get_dataset(names.pop())
    for ex in examples:
        ds.check_example(ex, path)
    return examples, ds


def read_predictions(path: str | Path, known: dict[str, Example]) -> dict[str, str]:
    preds: dict[str, str] = {}
    for lineno, rec in read_jsonl(path):
        pid, out = rec.get("id"), rec.get("output")
        if not isinstance(pid, str) or not isinstance(out, str):
            raise InputError("a prediction needs string fields 'id' and 'output'", path, lineno)
        if pid not in known:
            raise InputError(f"id {pid!r} is not in the test set", path, lineno)
        if pid in preds:
            raise InputError(f"duplicate id {pid!r}", path, lineno)
        preds[pid] = out
    return preds


TRACE_STYLES = ("auto", "rule", "freeform")


def freeform_folder(data_dir: str | Path) -> bool:
    """Whether a prepared folder's condition trains on free-form (teacher) traces (no manifest:
    a test file made by hand, read by the parser)."""
    from tracekd.jsonio import read_json
    from tracekd.traces.teacher import is_teacher_condition

    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        return False
    options = read_json(path).get("options")
    condition = options.get("condition") if isinstance(options, dict) else None
    return isinstance(condition, str) and is_teacher_condition(condition)


def evaluate(
    data_dir: str | Path,
    predictions: str | Path,
    out: str | Path,
    examples_out: str | Path | None = None,
    allow_missing: bool = False,
    trace_style: str = "auto",
) -> dict[str, Any]:
    """`trace_style`: `rule` (the parser), `freeform` (score/freeform.py), or `auto`: free-form
    for a folder prepared with a teacher condition."""
    if trace_style not in TRACE_STYLES:
        raise InputError(f"unknown trace style {trace_style!r}; choose one of {', '.join(TRACE_STYLES)}")
    out = Path(out)
    examples_out = Path(examples_out) if examples_out else examples_of(out)
    data = Path(data_dir)
    refuse_overwriting([out, examples_out], [predictions, *(data / f for f in PREPARED)])
    freeform = trace_style == "freeform" or (trace_style == "auto" and freeform_folder(data_dir))
    examples, ds = load_test_set(data_dir)
    known = {ex.id: ex for ex in examples}
    preds = read_predictions(predictions, known)
    missing = [ex.id for ex in examples if ex.id not in preds]
    if missing and not allow_missing:
        raise InputError(
            f"{len(missing)} test example(s) have no prediction (first: {missing[0]!r}); "
            "pass --allow-missing to count them as wrong",
            predictions,
        )
    rows = [score_output(ds, ex, preds.get(ex.id, ""), freeform) for ex in examples]
    for r in rows:
        if r["id"] not in preds:
            r["status"] = "missing"
    summary = summarize(rows, ds)
    summary["status"]["missing"] = len(missing)
    summary["dataset"] = ds.name
    summary["trace_style"] = "freeform" if freeform else "rule"
    summary["data"] = str(data_dir)
    summary["predictions"] = str(predictions)
    check_rows(rows, examples_out)
    check_scores(summary, out)
    for path in (out, examples_out):
        if path.is_dir():
            raise InputError("is a folder; name a file", path)
    with folder_lock(out.parent, "tracekd evaluate", lock_name=f".{out.name}.lock"):
        remove_stale_temps(out.parent, [out.name])  # what a killed evaluate left
        remove_stale_temps(examples_out.parent, [examples_out.name])
        with staged() as stage:  # both files or neither
            stage.jsonl(examples_out, rows)
            stage.json(out, summary)
    return summary
