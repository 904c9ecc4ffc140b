"""Score model outputs against prepared test examples: answers, trace steps, association.

`score_output` scores one output (a row: answer scores, each step of `STEPS`, the example's
flags); `summarize` aggregates rows (overall, per subset and label);
`evaluate` is the `tracekd evaluate` command: predictions JSONL (`id`, `output`) joined with
`DIR/test.jsonl` by id.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracekd.data import Dataset, Example, get_dataset
from tracekd.data.base import check_unique_ids
from tracekd.errors import InputError
from tracekd.jsonio import read_jsonl, staged
from tracekd.score.stats import association, reading, table_2x2
from tracekd.score.steps import PAPER_STEPS, paper_steps, score_steps
from tracekd.traces.parse import parse
from tracekd.traces.render import Trace

#: The trace steps, in order: the one place they are named. Each maps a score row to whether the
#: output got that step right, or None where the step does not apply to the example (no anchor
#: fact, no answer-bearing fact); statistics leave those rows out of that step's table.
STEPS: dict[str, Callable[[dict[str, Any]], bool | None]] = {
    "label": lambda r: r["label_correct"],
    "evidence": lambda r: r["evidence"]["exact"],
    "anchor": lambda r: r["anchor_retrieved"],
    "answer_fact": lambda r: r["answer_fact_retrieved"],
    "trace": lambda r: r["trace_correct"],
}


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def score_output(ds: Dataset, ex: Example, output: str) -> dict[str, Any]:
    """Everything tracekd measures about one output."""
    parsed = parse(output)
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
        "gold": {"label": ex.label, "evidence": ex.texts(ex.evidence), "anchor": ex.texts(ex.anchor),
                 "answer_facts": ex.texts(ex.answer_facts), "answers": list(ex.answers)},
        "flags": list(ex.flags),
        "status": status,
        "parsed": {"label": parsed.label,
                   "evidence": None if parsed.evidence is None else list(parsed.evidence),
                   "answers": None if parsed.answers is None else list(parsed.answers)},
        "answer": ds.score_answer(parsed.answers, ex, output),
        **steps,
        "paper": paper_steps(output, ex),
        "output": output,
    }


def rejudge_steps(row: dict[str, Any], ex: Example) -> dict[str, Any]:
    """The same output's row with its trace steps judged against another decomposition of its
    example (another evidence rule); the answer scores are kept."""
    p = row["parsed"]
    parsed = Trace(p["label"], None if p["evidence"] is None else tuple(p["evidence"]),
                   None if p["answers"] is None else tuple(p["answers"]))
    gold = {**row["gold"], "label": ex.label, "evidence": ex.texts(ex.evidence)}
    return {**row, "label": ex.label, "gold": gold, "flags": list(ex.flags), **score_steps(parsed, ex)}


def _step_flags(rows: list[dict[str, Any]]) -> dict[str, list[bool | None]]:
    """Per step, each row's flag (None: the step does not apply to that row's example)."""
    return {step: [flag(r) for r in rows] for step, flag in STEPS.items()}


def step_pairs(flags: list[bool | None], answer_ok: list[bool]) -> tuple[list[bool], list[bool]]:
    """The (step, answer) pairs of the rows the step applies to."""
    kept = [(f, a) for f, a in zip(flags, answer_ok) if f is not None]
    return [f for f, _ in kept], [a for _, a in kept]


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


def _compact(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "n": len(rows),
        "answer_accuracy": mean(r["answer"]["correct"] for r in rows),
        "label_accuracy": mean(r["label_correct"] for r in rows),
        "evidence_exact": mean(r["evidence"]["exact"] for r in rows),
        "trace_accuracy": mean(r["trace_correct"] for r in rows),
    }


def summarize(rows: list[dict[str, Any]], ds: Dataset) -> dict[str, Any]:
    """Scores overall, per subset and per label, with the three 2x2 associations."""
    if not rows:
        raise InputError("nothing to score: no predictions")
    answer_ok = [bool(r["answer"]["correct"]) for r in rows]
    status = Counter(r["status"] for r in rows)
    parsed = {k: sum(r["parsed"][k] is not None for r in rows) for k in ("label", "evidence", "answers")}
    assoc = {}
    for step, flags in _step_flags(rows).items():
        a = association(table_2x2(*step_pairs(flags, answer_ok)))
        a["reading"] = reading(a, step)
        assoc[step] = a
    by_subset: dict[str, list] = defaultdict(list)
    by_label: dict[str, list] = defaultdict(list)
    for r in rows:
        by_subset[r["subset"]].append(r)
        by_label[r["label"]].append(r)
    subset_summary = {k: _compact(v) for k, v in sorted(by_subset.items())}
    return {
        "n": len(rows),
        "status": {k: status.get(k, 0) for k in ("ok", "empty", "unparsable")},
        "parsed": parsed,
        "answer": {"accuracy": mean(answer_ok), **_means([r["answer"] for r in rows])},
        "steps": {
            "label_accuracy": mean(r["label_correct"] for r in rows),
            "evidence": _means([r["evidence"] for r in rows]),
            "evidence_tolerant": _means([r["evidence_tolerant"] for r in rows]),
            "anchor_accuracy": _applicable_mean(r["anchor_retrieved"] for r in rows),
            "answer_fact_accuracy": _applicable_mean(r["answer_fact_retrieved"] for r in rows),
            "trace_accuracy": mean(r["trace_correct"] for r in rows),
        },
        "flags": dict(sorted(Counter(f for r in rows for f in r["flags"]).items())),
        "association": assoc,
        "paper": _paper_summary(rows),
        "by_subset": subset_summary,
        "by_label": {k: _compact(v) for k, v in sorted(by_label.items())},
        "dataset_summary": ds.answer_summary({k: v["answer_accuracy"] for k, v in subset_summary.items()}),
    }


def _applicable_mean(flags) -> float | None:
    kept = [f for f in flags if f is not None]
    return mean(kept) if kept else None


def _paper_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The paper's definitions: step accuracies over all outputs, 2x2 tables over the evaluated
    ones, answer correctness as the upstream scorer's (when the dataset has one)."""
    evaluated = [r for r in rows if r["paper"] is not None]
    out: dict[str, Any] = {"evaluated": len(evaluated), "unevaluated": len(rows) - len(evaluated)}
    for step in PAPER_STEPS:
        out[f"{step}_accuracy"] = sum(r["paper"][f"{step}_correct"] for r in evaluated) / len(rows)
    answer = [bool(r["answer"].get("upstream", r["answer"])["correct"]) for r in evaluated]
    out["association"] = {
        step: association(table_2x2([r["paper"][f"{step}_correct"] for r in evaluated], answer)) for step in PAPER_STEPS
    }
    return out


# -- tracekd evaluate --------------------------------------------------------------------------------
def load_test_set(data_dir: str | Path) -> tuple[list[Example], Dataset]:
    path = Path(data_dir) / "test.jsonl"
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


def evaluate(data_dir: str | Path, predictions: str | Path, out: str | Path,
             examples_out: str | Path | None = None, allow_missing: bool = False) -> dict[str, Any]:
    examples, ds = load_test_set(data_dir)
    known = {ex.id: ex for ex in examples}
    preds = read_predictions(predictions, known)
    missing = [ex.id for ex in examples if ex.id not in preds]
    if missing and not allow_missing:
        raise InputError(f"{len(missing)} test example(s) have no prediction (first: {missing[0]!r}); "
                         "pass --allow-missing to count them as wrong", predictions)
    rows = [score_output(ds, ex, preds.get(ex.id, "")) for ex in examples]
    for r in rows:
        if r["id"] not in preds:
            r["status"] = "missing"
    summary = summarize(rows, ds)
    summary["status"]["missing"] = len(missing)
    summary["dataset"] = ds.name
    summary["data"] = str(data_dir)
    summary["predictions"] = str(predictions)
    out = Path(out)
    examples_out = Path(examples_out) if examples_out else out.with_name(out.stem + ".examples.jsonl")
    with staged() as stage:  # both files or neither
        stage.jsonl(examples_out, rows)
        stage.json(out, summary)
    return summary
