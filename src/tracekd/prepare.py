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
from tracekd.traces.conditions import CONDITIONS, make_targets, perturbation_counts
from tracekd.traces.prompt import prompt_messages
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


def _check(conditions: list[str], template: str) -> None:
    for c in conditions:
        if c not in CONDITIONS:
            raise InputError(f"unknown condition {c!r}; choose one of {', '.join(CONDITIONS)} (or all)")
    if template not in TEMPLATES:
        raise InputError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}")


def records(loaded: Loaded, split: str, condition: str, template: str, seed: int) -> list[dict[str, Any]]:
    examples = loaded.examples[split]
    sentence = loaded.dataset.label_sentence
    out = []
    for ex, (trace, pert) in zip(examples, make_targets(examples, condition, seed, loaded.labels)):
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
    return {
        "label": t.label,
        "evidence": None if t.evidence is None else list(t.evidence),
        "answers": None if t.answers is None else list(t.answers),
    }


def write(loaded: Loaded, condition: str, template: str, seed: int, out: str | Path) -> dict[str, Any]:
    """Build and write one condition; returns the manifest."""
    out = Path(out)
    _check([condition], template)
    built = {s: records(loaded, s, condition, template, seed) for s in SPLITS}
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
        "counts": {s: _counts(loaded.examples[s]) for s in SPLITS},
        "decomposition": {
            "examples": len(all_examples),
            "flags": loaded.dataset.decomposition_report(all_examples),
        },
        "perturbations": {s: perturbation_counts([r["perturbation"] for r in built[s]]) for s in SPLITS},
        "files": files,
    }
    write_json_atomic(out / "manifest.json", manifest)
    return manifest


def _counts(examples: list[Example]) -> dict[str, Any]:
    return {
        "total": len(examples),
        "subset": dict(sorted(Counter(ex.subset for ex in examples).items())),
        "label": dict(sorted(Counter(ex.label for ex in examples).items())),
    }


def prepare(
    options: DataOptions, conditions: str | list[str], template: str, seed: int, out: str | Path
) -> dict[str, Any]:
    """Load once and write each condition. One condition goes to `out`, several (or `all`)
    to `out/<condition>/`. Returns the manifest of each condition."""
    if isinstance(conditions, str):
        conditions = [conditions]
    if conditions == ["all"]:
        conditions = list(CONDITIONS)
    _check(conditions, template)  # before loading: a typo costs nothing
    loaded = load(options)
    out = Path(out)
    if len(conditions) == 1:
        return {conditions[0]: write(loaded, conditions[0], template, seed, out)}
    return {c: write(loaded, c, template, seed, out / c) for c in conditions}


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
