"""The dataset interface (load, classify, retrieve, its options) and the dataset registry.

A dataset plugs into tracekd by subclassing `Dataset` (with its own `Options` model when it takes
options) and decorating it with `@register`. Nothing else (prepare, the CLI, experiment configs,
trainer, scorer, reporter) needs to change: the CLI's choices and flags and the config's keys come
from the registry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tracekd.data.reading import resolve_source
from tracekd.data.schema import Example
from tracekd.errors import InputError
from tracekd.registry import Registry

LABEL_SENTENCE_CATEGORY = "The category of the question asked is: {label}."


@dataclass(frozen=True, slots=True)
class Retrieval:
    """Result of the Information Retrieval decomposition step for one example."""

    evidence: tuple[str, ...]
    anchor: tuple[str, ...] = ()
    answer_facts: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()


class DatasetOptions(BaseModel):
    """A dataset's own options. Each dataset with options subclasses this (`Dataset.Options`);
    each field is a flag of `tracekd prepare` (its description the help; `json_schema_extra`
    `{"flag": NAME}` renames the flag) and a key of a dataset entry in an experiment config.
    Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subsets: list[str] | None = Field(
        None, description="Subset / task to keep (repeatable).", json_schema_extra={"flag": "subset"}
    )


def subsets_among(choices: tuple[str, ...], what: str) -> Any:
    """A `DatasetOptions` validator: every subset asked for must be one of `choices`."""

    def check(cls: type, v: list[str] | None) -> list[str] | None:
        bad = [s for s in v or () if s not in choices]
        if bad:
            raise ValueError(f"unknown {what} {', '.join(map(str, bad))}; choose from {', '.join(choices)}")
        return v

    return field_validator("subsets")(check)


class Dataset(ABC):
    """One dataset: how to read it, its decomposition rules, and its options.

    Subclasses set `name`, `labels` (the label space), `label_sentence` (the paper's sentence for
    the classification step) and `label_lexicon` (how a free-form trace states each label),
    `Options` (their options model) when they take more than `subsets`, and implement `read`,
    `classify` and `retrieve`. `seed` is the data seed (generated datasets draw their examples
    from it). `@register` refuses a class that lacks what the pipeline needs.
    """

    name: ClassVar[str]
    labels: ClassVar[tuple[str, ...]]
    label_sentence: ClassVar[str] = LABEL_SENTENCE_CATEGORY
    synthetic: ClassVar[bool] = False
    Options: ClassVar[type[DatasetOptions]] = DatasetOptions
    #: True when each gold answer is a complete answer on its own (MS MARCO's alternative
    #: phrasings); False when the answer is the whole list (CoTempQA's sets, bAbI's lists)
    answers_are_alternatives: ClassVar[bool] = False
    #: the gold-evidence rules the dataset offers (option `ir_rule`), its default first
    ir_rules: ClassVar[tuple[str, ...]] = ()
    #: the answer scorer of `tracekd.score.answers` that scores this dataset's answers (by name:
    #: data does not import score). `set`: strict set-level exact match and F1.
    answer_scorer: ClassVar[str] = "set"
    #: label -> the phrases a free-form trace states it with (`score/freeform.py` matches them on
    #: normalised text, hyphens as spaces): every label needs at least one
    label_lexicon: ClassVar[Mapping[str, tuple[str, ...]]]
    #: phrases that never state a label (the dataset's own question wording: "during the same
    #: time period" states no relation)
    label_neutral: ClassVar[tuple[str, ...]] = ()

    def __init__(self, seed: int = 0, **options: Any):
        self.seed = seed
        self.options: Any = self.parse_options(options)  # an instance of the dataset's own `Options`

    @classmethod
    def parse_options(cls, values: dict[str, Any]) -> DatasetOptions:
        """The dataset's options from plain values (None: not given); a bad or unknown one is an
        InputError whose `key` names it."""
        try:
            return cls.Options(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as e:
            err = e.errors()[0]
            key = str(err["loc"][0]) if err["loc"] else None
            if err["type"] == "extra_forbidden":
                raise InputError(f"dataset {cls.name!r} does not take this option", key=key) from None
            raise InputError(err["msg"].removeprefix("Value error, "), key=key) from None

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

    def check_example(self, ex: Example, path) -> None:  # noqa: B027 - a hook: most datasets check nothing
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
        return ex.replace(
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


REGISTRY: Registry[type[Dataset]] = Registry("a dataset")


def _phrases(value: Any) -> bool:
    return isinstance(value, tuple) and bool(value) and all(isinstance(p, str) and p.strip() for p in value)


def _lacks(cls: type[Dataset]) -> list[str]:
    """What of the pipeline's needs the dataset class lacks, in words (empty: nothing)."""
    labels: Any = getattr(cls, "labels", None)
    lexicon: Any = getattr(cls, "label_lexicon", None)
    checks = {
        "`name` (a non-empty string)": isinstance(getattr(cls, "name", None), str) and bool(cls.name),
        "`labels` (a non-empty tuple of label names)": _phrases(labels),
        "`label_sentence` (a string with `{label}`)": "{label}" in str(getattr(cls, "label_sentence", "")),
        "`answer_scorer` (the name of an answer scorer)": isinstance(cls.answer_scorer, str)
        and bool(cls.answer_scorer),
        "`label_lexicon` (label -> phrases stating it: the free-form label step)": isinstance(lexicon, Mapping)
        and all(_phrases(v) for v in lexicon.values()),
        "`label_neutral` (a tuple of phrases)": isinstance(cls.label_neutral, tuple),
        "`read`, `classify` and `retrieve`": not getattr(cls, "__abstractmethods__", ()),
    }
    lacks = [what for what, ok in checks.items() if not ok]
    if not lacks and not set(labels) <= set(lexicon):
        missing = ", ".join(lab for lab in labels if lab not in lexicon)
        lacks.append(f"`label_lexicon` phrases for every label (none for {missing})")
    return lacks


def register(cls: type[Dataset]) -> type[Dataset]:
    """Add a dataset to the registry under its `name` (a name is taken once). A class that lacks
    what the pipeline needs of a dataset (its label space, label sentence, answer scorer, label
    lexicon, the three rules) is refused, with what it lacks."""
    lacks = _lacks(cls)
    if lacks:
        raise ValueError(f"dataset class {cls.__qualname__} cannot be registered: it lacks {'; '.join(lacks)}")
    return REGISTRY.add(cls.name, cls)


def target_answers(ex: Example) -> tuple[str, ...]:
    """The answer a training target states: the whole gold list, or only the first gold answer
    where the gold answers are alternatives (a target naming two alternatives matches neither)."""
    cls = REGISTRY.get(ex.dataset)
    return ex.answers[:1] if cls is not None and cls.answers_are_alternatives else ex.answers


def get_dataset(name: str, seed: int = 0, **options: Any) -> Dataset:
    """The registered dataset `name` with its options (`seed`: the data seed)."""
    if name not in REGISTRY:
        raise InputError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name](seed, **options)
