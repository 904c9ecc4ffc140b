"""`tracekd prepare`: dataset -> decomposed examples -> SFT files for one condition.

Writes DIR/train.jsonl and DIR/test.jsonl in TRL's conversational prompt-completion form, with
the example's gold decomposition beside it, and DIR/manifest.json (counts, options, sha256).
Everything is built in memory first, so bad input writes nothing; files are written atomically.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import tracekd
from tracekd.data import Dataset, Example, get_dataset
from tracekd.jsonio import read_jsonl, write_json_atomic, write_jsonl_atomic
from tracekd.traces.conditions import CONDITIONS
from tracekd.traces.prompt import prompt_messages
from tracekd.traces.teacher import check_condition, condition_targets, needs_teacher, read_teacher, teacher_summary
from tracekd.traces.render import TEMPLATES, Trace, render
from tracekd.errors import InputError

SPLITS = ("train", "test")


@dataclass
class DataOptions:
    """What selects the examples (independent of condition, template and seed)."""

    dataset: str
    source: str | None = None
    size: int | None = None
    subsets: list[str] | None = None
    ir_rule: str | None = None
    preset: str | None = None
    data_seed: int = 42
    test_fraction: float = 0.2
    limit_train: int | None = None
    limit_test: int | None = None

    def dataset_options(self) -> dict[str, Any]:
        opts = {"subsets": self.subsets, "ir_rule": self.ir_rule, "preset": self.preset, "size": self.size}
        if self.size is not None:
            opts["seed"] = self.data_seed
        return opts


@dataclass
class Loaded:
    options: DataOptions
    dataset: Dataset
    examples: dict[str, list[Example]] = field(default_factory=dict)  # split -> examples
    labels: tuple[str, ...] = ()


def assign_splits(examples: list[Example], seed: int, test_fraction: float) -> list[Example]:
    """Per subset: round(test_fraction * n) test examples chosen with a fixed seed, the rest train.

    With seed 42 this is the paper's split (pandas `sample(frac=0.2, random_state=42)`).
    Examples that already have a split (bAbI files, hub splits) keep it.
    """
    by_subset: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        if not ex.split:
            by_subset.setdefault(ex.subset, []).append(i)
    out = list(examples)
    for idx in by_subset.values():
        n = len(idx)
        test = set(np.random.RandomState(seed).permutation(n)[: round(test_fraction * n)].tolist())
        for j, i in enumerate(idx):
            out[i] = out[i].with_(split="test" if j in test else "train")
    return out


def _limit(examples: list[Example], limit: int | None, seed: int) -> list[Example]:
    if limit is None or limit >= len(examples):
        return examples
    keep = set(np.random.RandomState(seed).permutation(len(examples))[:limit].tolist())
    return [ex for i, ex in enumerate(examples) if i in keep]


def load(options: DataOptions) -> Loaded:
    ds = get_dataset(options.dataset, **options.dataset_options())
    if ds.synthetic and options.source:
        raise InputError(f"dataset {options.dataset!r} is generated; use --size, not --source")
    examples = assign_splits(ds.load(options.source), options.data_seed, options.test_fraction)
    by_split = {s: [ex for ex in examples if ex.split == s] for s in SPLITS}
    by_split["train"] = _limit(by_split["train"], options.limit_train, options.data_seed)
    by_split["test"] = _limit(by_split["test"], options.limit_test, options.data_seed)
    if not by_split["train"] and not by_split["test"]:
        raise InputError(f"no examples selected from {options.source or options.dataset}")
    return Loaded(options, ds, by_split, ds.label_space(by_split["train"] + by_split["test"]))


def _check(conditions: list[str], template: str, teacher: str | Path | None = None) -> None:
    for c in conditions:
        check_condition(c)
        if needs_teacher(c) and teacher is None:
            raise InputError(f"condition {c!r} needs teacher traces: --teacher DIR (a folder `tracekd teach` wrote)")
    if template not in TEMPLATES:
        raise InputError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}")


def records(loaded: Loaded, split: str, condition: str, template: str, seed: int,
            teacher: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    sentence = loaded.dataset.label_sentence
    out = []
    examples, targets = condition_targets(loaded.examples[split], condition, seed, loaded.labels, teacher)
    for ex, (trace, pert) in zip(examples, targets):
        rec = {
            "id": ex.id,
            "prompt": prompt_messages(ex),
            "completion": [{"role": "assistant", "content": render(trace, template, sentence)}],
            "condition": condition,
            "template": template,
            "target": _trace_record(trace),
            "perturbation": pert,
        }
        rec.update(ex.to_record())
        out.append(rec)
    return out


def _trace_record(t: Trace) -> dict[str, Any]:
    rec = {
        "label": t.label,
        "evidence": None if t.evidence is None else list(t.evidence),
        "answers": None if t.answers is None else list(t.answers),
    }
    if t.reasoning is not None:
        rec["reasoning"] = t.reasoning
    return rec


def write(loaded: Loaded, condition: str, template: str, seed: int, out: str | Path,
          teacher: str | Path | None = None, teacher_rows: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Build and write one condition; returns the manifest. `teacher`: a `tracekd teach` folder
    (for teacher conditions and `@teacher_correct` ones; `teacher_rows`: its records, if read)."""
    out = Path(out)
    _check([condition], template, teacher)
    if needs_teacher(condition) and teacher_rows is None:
        teacher_rows = read_teacher(teacher)
    built = {s: records(loaded, s, condition, template, seed, teacher_rows if needs_teacher(condition) else None) for s in SPLITS}
    if needs_teacher(condition):
        _check_kept(built, condition, teacher)
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", out)
    files = {}
    for split in SPLITS:
        sha = write_jsonl_atomic(out / f"{split}.jsonl", built[split])
        files[f"{split}.jsonl"] = {"records": len(built[split]), "sha256": sha}
    all_examples = loaded.examples["train"] + loaded.examples["test"]
    manifest = {
        "tracekd_version": tracekd.__version__,
        "dataset": loaded.options.dataset,
        "options": {**asdict(loaded.options), "condition": condition, "template": template, "seed": seed},
        "label_space": list(loaded.labels),
        "label_sentence": loaded.dataset.label_sentence,
        "counts": {s: _counts(built[s]) for s in SPLITS},  # what was written (a teacher condition keeps fewer)
        "decomposition": {
            "examples": len(all_examples),
            "flags": loaded.dataset.decomposition_report(all_examples),
        },
        "files": files,
    }
    if needs_teacher(condition):
        summary = teacher_summary(teacher)
        manifest["teacher"] = {"folder": str(teacher), "teacher": summary.get("teacher"),
                               "kept": {s: len(built[s]) for s in SPLITS},
                               "of": {s: len(loaded.examples[s]) for s in SPLITS}}
    write_json_atomic(out / "manifest.json", manifest)
    return manifest


def _check_kept(built: dict[str, list], condition: str, teacher: str | Path | None) -> None:
    """A teacher-restricted condition needs a kept example in each split (nothing to train or test on otherwise)."""
    for split in SPLITS:
        if not built[split]:
            raise InputError(f"condition {condition!r}: the teacher kept no {split} example, so there is nothing to "
                             f"{'train' if split == 'train' else 'test'} on (see teach_summary.json)", teacher)


def _counts(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "total": len(records),
        "subset": dict(sorted(Counter(r["subset"] for r in records).items())),
        "label": dict(sorted(Counter(r["label"] for r in records).items())),
    }


def prepare(
    options: DataOptions, conditions: str | list[str], template: str, seed: int, out: str | Path,
    teacher: str | Path | None = None,
) -> dict[str, Any]:
    """Load once and write each condition. One condition goes to `out`, several (or `all`)
    to `out/<condition>/`. Returns the manifest of each condition. `teacher`: the folder of
    `tracekd teach` for teacher conditions and `@teacher_correct` restrictions."""
    if isinstance(conditions, str):
        conditions = [conditions]
    if conditions == ["all"]:
        conditions = list(CONDITIONS)
    _check(conditions, template, teacher)  # before loading: a typo costs nothing
    rows = read_teacher(teacher) if teacher is not None and any(map(needs_teacher, conditions)) else None
    loaded = load(options)
    out = Path(out)
    if len(conditions) == 1:
        return {conditions[0]: write(loaded, conditions[0], template, seed, out, teacher, rows)}
    return {c: write(loaded, c, template, seed, out / c, teacher, rows) for c in conditions}


def read_sft_records(data_dir: Path, split: str = "train") -> list[dict[str, Any]]:
    """Read back a prepared split (for training and generation)."""
    path = data_dir / f"{split}.jsonl"
    if not path.is_file():
        raise InputError(f"no {split}.jsonl in the data folder (run `tracekd prepare` first)", data_dir)
    out = []
    for lineno, rec in read_jsonl(path):
        if not isinstance(rec.get("prompt"), list) or not isinstance(rec.get("completion"), list):
            raise InputError("record needs 'prompt' and 'completion' message lists", path, lineno)
        out.append(rec)
    if not out:
        raise InputError(f"{split}.jsonl is empty", path)
    return out
