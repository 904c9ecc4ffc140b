"""Score model outputs against prepared test examples: answers, trace steps, association.

`score_output` scores one output; `summarize` aggregates rows (overall, per subset and label);
`evaluate` is the `tracekd evaluate` command: predictions JSONL (`id`, `output`) joined with
`DIR/test.jsonl` by id.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from tracekd.data import Dataset, Example, get_dataset
from tracekd.errors import InputError
from tracekd.jsonio import read_jsonl, write_json_atomic, write_jsonl_atomic
from tracekd.score.freeform import freeform_trace
from tracekd.score.stats import association, reading, table_2x2
from tracekd.score.steps import paper_steps, score_steps
from tracekd.traces.parse import parse

STEPS = ("label", "evidence", "trace")


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def score_output(ds: Dataset, ex: Example, output: str, freeform: bool = False) -> dict[str, Any]:
    """Everything tracekd measures about one output. `freeform`: the trace is free text (a
    teacher's reasoning), its steps read by `score/freeform.py` instead of the parser."""
    parsed = freeform_trace(output, ex) if freeform else parse(output)
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
        "gold": {"label": ex.label, "evidence": ex.texts(ex.evidence), "answers": list(ex.answers)},
        "status": status,
        "parsed": {"label": parsed.label,
                   "evidence": None if parsed.evidence is None else list(parsed.evidence),
                   "answers": None if parsed.answers is None else list(parsed.answers)},
        "answer": ds.score_answer(parsed.answers, ex, output),
        **steps,
        "paper": paper_steps(output, ex),
        "output": output,
    }


def _step_flags(rows: list[dict[str, Any]]) -> dict[str, list[bool]]:
    return {
        "label": [r["label_correct"] for r in rows],
        "evidence": [r["evidence"]["exact"] for r in rows],
        "trace": [r["trace_correct"] for r in rows],
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
        a = association(table_2x2(flags, answer_ok))
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
            "trace_accuracy": mean(r["trace_correct"] for r in rows),
        },
        "association": assoc,
        "paper": _paper_summary(rows),
        "by_subset": subset_summary,
        "by_label": {k: _compact(v) for k, v in sorted(by_label.items())},
        "dataset_summary": ds.answer_summary({k: v["answer_accuracy"] for k, v in subset_summary.items()}),
    }


def _paper_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The paper's definitions: step accuracies over all outputs, 2x2 tables over the evaluated
    ones, answer correctness as the upstream scorer's (when the dataset has one)."""
    evaluated = [r for r in rows if r["paper"] is not None]
    out: dict[str, Any] = {"evaluated": len(evaluated), "unevaluated": len(rows) - len(evaluated)}
    for step in STEPS:
        out[f"{step}_accuracy"] = sum(r["paper"][f"{step}_correct"] for r in evaluated) / len(rows)
    answer = [bool(r["answer"].get("upstream", r["answer"])["correct"]) for r in evaluated]
    out["association"] = {
        step: association(table_2x2([r["paper"][f"{step}_correct"] for r in evaluated], answer)) for step in STEPS
    }
    return out


# -- tracekd evaluate --------------------------------------------------------------------------------
def load_test_set(data_dir: str | Path) -> tuple[list[Example], Dataset]:
    path = Path(data_dir) / "test.jsonl"
    examples = []
    for lineno, rec in read_jsonl(path):
        try:
            examples.append(Example.from_record(rec))
        except KeyError as e:
            raise InputError(f"test record has no {e.args[0]!r} field (is this a folder written by `tracekd prepare`?)", path, lineno) from None
    if not examples:
        raise InputError("test set is empty", path)
    names = {ex.dataset for ex in examples}
    if len(names) != 1:
        raise InputError(f"test set mixes datasets {sorted(names)}", path)
    return examples, get_dataset(names.pop())


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
    """Whether a prepared folder's condition trains on free-form (teacher) traces."""
    import json

    from tracekd.traces.teacher import is_teacher_condition

    path = Path(data_dir) / "manifest.json"
    try:
        condition = json.loads(path.read_text())["options"]["condition"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return is_teacher_condition(condition)


def evaluate(data_dir: str | Path, predictions: str | Path, out: str | Path,
             examples_out: str | Path | None = None, allow_missing: bool = False,
             trace_style: str = "auto") -> dict[str, Any]:
    """`trace_style`: `rule` (the parser), `freeform` (score/freeform.py), or `auto`: free-form
    for a folder prepared with a teacher condition."""
    if trace_style not in TRACE_STYLES:
        raise InputError(f"unknown trace style {trace_style!r}; choose one of {', '.join(TRACE_STYLES)}")
    freeform = trace_style == "freeform" or (trace_style == "auto" and freeform_folder(data_dir))
    examples, ds = load_test_set(data_dir)
    known = {ex.id: ex for ex in examples}
    preds = read_predictions(predictions, known)
    missing = [ex.id for ex in examples if ex.id not in preds]
    if missing and not allow_missing:
        raise InputError(f"{len(missing)} test example(s) have no prediction (first: {missing[0]!r}); "
                         "pass --allow-missing to count them as wrong", predictions)
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
    out = Path(out)
    examples_out = Path(examples_out) if examples_out else out.with_name(out.stem + ".examples.jsonl")
    write_jsonl_atomic(examples_out, rows)
    write_json_atomic(out, summary)
    return summary
