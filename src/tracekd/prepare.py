"""`tracekd prepare`: dataset -> decomposed examples -> SFT files for one condition.

Writes DIR/train.jsonl and DIR/test.jsonl in TRL's conversational prompt-completion form, with
the example's gold decomposition beside it, and DIR/manifest.json (counts, options, sha256).
Every condition asked for is built in memory first, so bad input writes nothing; then all files
are published together (staged beside their targets, renamed into place under a journal that the
next prepare rolls forward after a kill): a previous result is replaced whole or not at all.
The output folder is locked while this happens.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import tracekd
from tracekd.data import Dataset, Example
from tracekd.data.config import SEED_MAX, DatasetConfig
from tracekd.errors import InputError
from tracekd.jsonio import JOURNAL, recover, refuse_overwriting, remove_stale_temps, staged
from tracekd.layout import MANIFEST, SPLITS, TEACH_SUMMARY, TEACHER_TRACES, split_file
from tracekd.layout import PREPARED as FILES
from tracekd.lock import folder_lock
from tracekd.traces.conditions import CONDITIONS, perturbation_counts
from tracekd.traces.records import sft_record
from tracekd.traces.render import TEMPLATES
from tracekd.traces.teacher import check_condition, condition_targets, needs_teacher, read_teacher, teacher_summary


@dataclass
class SelectedExamples:
    """A dataset's examples as a config selects them, per split, with the labels a wrong-label
    perturbation may choose from."""

    config: DatasetConfig
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
            out[i] = out[i].replace(split="test" if j in test else "train")
    return out


def copies_of_train(train: list[Example], test: list[Example]) -> dict[str, Any]:
    """Test items whose context and question equal a training item's (verbatim copies: 138 of the
    full bAbI test split, 134 of them in task 4), counted per subset; they are kept, and reported
    so that a reader can judge how much a test score is memorisation."""
    seen = {(ex.question, tuple(c.text for c in ex.context)) for ex in train}
    copies = [ex for ex in test if (ex.question, tuple(c.text for c in ex.context)) in seen]
    by_subset: dict[str, int] = {}
    for ex in copies:
        by_subset[ex.subset] = by_subset.get(ex.subset, 0) + 1
    return {"items": len(copies), "of": len(test), "by_subset": dict(sorted(by_subset.items()))}


def _limit(examples: list[Example], limit: int | None, seed: int) -> list[Example]:
    if limit is None or limit >= len(examples):
        return examples
    keep = set(np.random.RandomState(seed).permutation(len(examples))[:limit].tolist())
    return [ex for i, ex in enumerate(examples) if i in keep]


def load(config: DatasetConfig) -> SelectedExamples:
    ds = config.dataset()
    ds.check_readable(config.source)
    examples = assign_splits(ds.load(config.source), config.data_seed, config.test_fraction)
    by_split = {s: [ex for ex in examples if ex.split == s] for s in SPLITS}
    by_split["train"] = _limit(by_split["train"], config.limit_train, config.data_seed)
    if config.limit_test_per_subset is not None:  # each subset's draw, in the file's order
        drawn = {
            ex.id
            for subset in dict.fromkeys(ex.subset for ex in by_split["test"])
            for ex in _limit(
                [e for e in by_split["test"] if e.subset == subset], config.limit_test_per_subset, config.data_seed
            )
        }
        by_split["test"] = [ex for ex in by_split["test"] if ex.id in drawn]
    by_split["test"] = _limit(by_split["test"], config.limit_test, config.data_seed)
    if not by_split["train"] and not by_split["test"]:
        raise InputError(f"no examples selected from {config.source or config.name}")
    return SelectedExamples(config, ds, by_split, ds.label_space(by_split["train"] + by_split["test"]))


def _check(conditions: list[str], template: str, seed: int, teacher: str | Path | None = None) -> None:
    for c in conditions:
        check_condition(c)
        if needs_teacher(c) and teacher is None:
            raise InputError(f"condition {c!r} needs teacher traces: --teacher DIR (a folder `tracekd teach` wrote)")
    if len(set(conditions)) != len(conditions):
        raise InputError("a condition is given twice")
    if template not in TEMPLATES:
        raise InputError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}")
    if not 0 <= seed <= SEED_MAX:
        raise InputError(f"the seed must be from 0 to {SEED_MAX}, not {seed}")


def records(
    selected: SelectedExamples,
    split: str,
    condition: str,
    template: str,
    seed: int,
    teacher: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    examples, targets = condition_targets(selected.examples[split], condition, seed, selected.labels, teacher)
    return [
        sft_record(ex, trace, pert, condition, template, selected.dataset.label_sentence)
        for ex, (trace, pert) in zip(examples, targets)
    ]


def build(
    selected: SelectedExamples,
    condition: str,
    template: str,
    seed: int,
    teacher: str | Path | None = None,
    teacher_rows: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, list], dict[str, Any]]:
    """One condition's records per split and its manifest (without the file digests), in memory.
    `teacher`: a `tracekd teach` folder (for teacher conditions and `@teacher_correct` ones) and
    `teacher_rows` its records."""
    rows = teacher_rows if needs_teacher(condition) else None
    built = {s: records(selected, s, condition, template, seed, rows) for s in SPLITS}
    if needs_teacher(condition):
        _check_kept(built, condition, teacher)
    all_examples = selected.examples["train"] + selected.examples["test"]
    manifest = {
        "tracekd_version": tracekd.__version__,
        "dataset": selected.config.name,
        "options": {**selected.config.model_dump(), "condition": condition, "template": template, "seed": seed},
        "label_space": list(selected.labels),
        "label_sentence": selected.dataset.label_sentence,
        "counts": {s: _counts(built[s]) for s in SPLITS},  # what was written (a teacher condition keeps fewer)
        "decomposition": {
            "examples": len(all_examples),
            "flags": selected.dataset.decomposition_report(all_examples),
        },
        "test_copies_of_train": copies_of_train(selected.examples["train"], selected.examples["test"]),
        "perturbations": {s: perturbation_counts([r["perturbation"] for r in built[s]]) for s in SPLITS},
    }
    if needs_teacher(condition) and teacher is not None:  # prepare's _check: a teacher condition has one
        manifest["teacher"] = {
            "folder": str(teacher),
            "teacher": teacher_summary(teacher).get("teacher"),
            "kept": {s: len(built[s]) for s in SPLITS},
            "of": {s: len(selected.examples[s]) for s in SPLITS},
        }
    return built, manifest


def publish(
    selected: SelectedExamples, targets: dict[str, Path], template: str, seed: int, teacher: str | Path | None = None
) -> dict[str, dict[str, Any]]:
    """Build every condition (condition -> its folder), then write them all or none."""
    rows = read_teacher(teacher) if teacher is not None and any(map(needs_teacher, targets)) else None
    built = {c: build(selected, c, template, seed, teacher, rows) for c in targets}
    for folder in targets.values():
        if folder.exists() and not folder.is_dir():
            raise InputError("output path exists and is not a folder", folder)
    root = Path(os.path.commonpath([str(p) for p in targets.values()]))
    source = Path(selected.config.source) if selected.config.source else None
    inputs = [source, *((source / f for f in FILES) if source is not None and source.is_dir() else ())]
    inputs += [Path(teacher) / f for f in (TEACHER_TRACES, TEACH_SUMMARY)] if teacher else []
    refuse_overwriting([folder / f for folder in targets.values() for f in FILES], inputs)
    with folder_lock(root, "prepare"):
        recover(root / JOURNAL)
        remove_stale_temps(root, [JOURNAL])
        for folder in targets.values():
            remove_stale_temps(folder, FILES)
        with staged(root / JOURNAL) as stage:
            for cond, (records_by_split, manifest) in built.items():
                folder = targets[cond]
                manifest["files"] = {
                    split_file(split): {
                        "records": len(records_by_split[split]),
                        "sha256": stage.jsonl(folder / split_file(split), records_by_split[split]),
                    }
                    for split in SPLITS
                }
                stage.json(folder / MANIFEST, manifest)
    return {c: manifest for c, (_, manifest) in built.items()}


def _check_kept(built: dict[str, list], condition: str, teacher: str | Path | None) -> None:
    """A teacher-restricted condition needs a kept example in each split (nothing to train or test on otherwise)."""
    for split in SPLITS:
        if not built[split]:
            raise InputError(
                f"condition {condition!r}: the teacher kept no {split} example, so there is nothing to "
                f"{'train' if split == 'train' else 'test'} on (see teach_summary.json)",
                teacher,
            )


def _counts(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "total": len(records),
        "subset": dict(sorted(Counter(r["subset"] for r in records).items())),
        "label": dict(sorted(Counter(r["label"] for r in records).items())),
    }


def prepare(
    config: DatasetConfig,
    conditions: str | list[str],
    template: str,
    seed: int,
    out: str | Path,
    teacher: str | Path | None = None,
) -> dict[str, Any]:
    """Load once and write each condition. One condition goes to `out`, several (or `all`)
    to `out/<condition>/`. Returns the manifest of each condition. `teacher`: the folder of
    `tracekd teach` for teacher conditions and `@teacher_correct` restrictions."""
    if isinstance(conditions, str):
        conditions = [conditions]
    if conditions == ["all"]:
        conditions = list(CONDITIONS)
    _check(conditions, template, seed, teacher)  # before loading: a typo costs nothing
    selected = load(config)
    out = Path(out)
    if len(conditions) == 1:
        return publish(selected, {conditions[0]: out}, template, seed, teacher)
    return publish(selected, {c: out / c for c in conditions}, template, seed, teacher)
