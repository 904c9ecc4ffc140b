"""The dataset interface (load, classify, retrieve, score) and the dataset registry.

A dataset plugs into tracekd by subclassing `Dataset` and decorating it with `@register`.
Nothing else (prepare, trainer, scorer, reporter) needs to change.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from tracekd.data.schema import Example
from tracekd.errors import InputError

LABEL_SENTENCE_CATEGORY = "The category of the question asked is: {label}."


@dataclass(frozen=True, slots=True)
class Retrieval:
    """Result of the Information Retrieval decomposition step for one example."""

    evidence: tuple[str, ...]
    anchor: tuple[str, ...] = ()
    answer_facts: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()


class Dataset(ABC):
    """One dataset: how to read it, and its decomposition rules.

    Subclasses set `name`, `labels` (the label space) and `label_sentence` (the paper's
    sentence for the classification step) and implement `read`, `classify` and `retrieve`.
    """

    name: ClassVar[str]
    labels: ClassVar[tuple[str, ...]]
    label_sentence: ClassVar[str] = LABEL_SENTENCE_CATEGORY
    hub_id: ClassVar[str | None] = None
    synthetic: ClassVar[bool] = False
    #: options this dataset accepts (besides none); others are rejected with a clear message
    accepts: ClassVar[frozenset[str]] = frozenset()
    #: True when each gold answer is a complete answer on its own (MS MARCO's alternative
    #: phrasings); False when the answer is the whole list (CoTempQA's sets, bAbI's lists)
    answers_are_alternatives: ClassVar[bool] = False
    #: the gold-evidence rules the dataset offers (option `ir_rule`), its default first
    ir_rules: ClassVar[tuple[str, ...]] = ()
    #: the answer scorer of `tracekd.score.answers` that scores this dataset's answers (by name:
    #: data does not import score). `set`: strict set-level exact match and F1.
    answer_scorer: ClassVar[str] = "set"

    def __init__(self, **options: Any):
        given = {k for k, v in options.items() if v is not None}
        unknown = sorted(given - self.accepts)
        if unknown:
            raise InputError(f"dataset {self.name!r} does not take this option", key=unknown[0])
        self.options = options

    # -- the interface -------------------------------------------------------------------
    @abstractmethod
    def read(self, source: str | None) -> list[Example]:
        """Read raw examples (label and evidence not yet set) from a file, folder or hub id."""

    @abstractmethod
    def classify(self, ex: Example) -> str:
        """The gold label of the Classification step."""

    @abstractmethod
    def retrieve(self, ex: Example) -> Retrieval:
        """The gold evidence of the Information Retrieval step."""

    def check_readable(self, source: str | None) -> None:
        """Refuse, before anything is read, a source (or options) `read` could not use."""
        resolve_source(source, self.name)

    def check_example(self, ex: Example, path) -> None:
        """Refuse a prepared example (read back from `path`) this dataset cannot score."""

    def label_space(self, examples: list[Example]) -> tuple[str, ...]:
        """Labels a wrong-label perturbation may choose from."""
        return self.labels

    def answer_summary(self, accuracy_by_subset: dict[str, float]) -> dict[str, Any]:
        """Dataset-specific headline numbers computed from per-subset answer accuracy."""
        return {}

    # -- derived ---------------------------------------------------------------------------
    def load(self, source: str | None = None) -> list[Example]:
        """Read and decompose: every example gets its gold label and evidence."""
        return [self.decompose(ex) for ex in self.read(source)]

    def decompose(self, ex: Example) -> Example:
        """Apply the decomposition rules to one raw example."""
        r = self.retrieve(ex)
        return ex.with_(
            label=self.classify(ex),
            evidence=r.evidence,
            anchor=r.anchor,
            answer_facts=r.answer_facts,
            flags=ex.flags + r.flags,
        )

    def decomposition_report(self, examples: list[Example]) -> dict[str, int]:
        """How many examples carry each flag (e.g. no anchor found)."""
        c = Counter(f for ex in examples for f in ex.flags)
        return dict(sorted(c.items()))


REGISTRY: dict[str, type[Dataset]] = {}


def register(cls: type[Dataset]) -> type[Dataset]:
    REGISTRY[cls.name] = cls
    return cls


def target_answers(ex: Example) -> tuple[str, ...]:
    """The answer a training target states: the whole gold list, or only the first gold answer
    where the gold answers are alternatives (a target naming two alternatives matches neither)."""
    cls = REGISTRY.get(ex.dataset)
    return ex.answers[:1] if cls is not None and cls.answers_are_alternatives else ex.answers


def get_dataset(name: str, **options: Any) -> Dataset:
    if name not in REGISTRY:
        raise InputError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name](**options)


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_source(source: str | None, dataset: str) -> tuple[str, Path | str]:
    """('path', Path) for an existing file or folder, ('hub', id) for a hub id; otherwise an
    InputError with key `source`."""
    if source is None or source == "":
        raise InputError(f"dataset {dataset!r} needs a source (a file, a folder or a hub id)", key="source")
    p = Path(source)
    if p.exists():
        return "path", p
    if _HUB_ID.match(source) and not source.startswith((".", "/")) and not p.suffix:
        return "hub", source
    raise InputError("file not found", p, key="source")


def check_unique_ids(examples: list[Example], where, what: str = "example id") -> None:
    """Two examples with one id would be scored against each other's gold: refuse."""
    seen = set()
    for ex in examples:
        if ex.id in seen:
            raise InputError(f"duplicate {what} {ex.id!r}", where)
        seen.add(ex.id)


def string_list(value: Any, key: str, path, line: int | None, allow_empty: bool = False) -> list[str]:
    """A JSON field that must be a list of non-empty strings."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"field {key!r} must be a list of strings", path, line)
    if not allow_empty and not any(v.strip() for v in value):
        raise InputError(f"field {key!r} has no non-empty string", path, line)
    return value


def record_id(value: Any, key: str, path, line: int | None) -> str:
    """An id field: a non-negative integer or a non-empty string without line breaks."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.strip() and value == " ".join(value.split()):
        return value
    raise InputError(f"field {key!r} must be a non-negative integer or a one-line string, not {json_type(value)}", path, line)


def json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def load_hub(hub_id: str, *args: Any, **kwargs: Any) -> Any:
    """`datasets.load_dataset` with a clear message when the hub cannot be reached."""
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - datasets is a dependency
        raise InputError(f"reading {hub_id!r} needs the `datasets` package") from e
    try:
        return datasets.load_dataset(hub_id, *args, **kwargs)
    except Exception as e:  # network, auth, missing config: all are the user's input problem
        raise InputError(f"could not load hub dataset {hub_id!r}: {type(e).__name__}: {e}") from None
