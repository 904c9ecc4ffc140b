"""SFT conditions: which trace each training target carries. The answer is always correct.

The conditions are a registry, like the datasets: `REGISTRY` (name -> `Condition`: its words in
`doc`, and how one example's target is built), filled by `register` (a name is taken once);
`make_targets`, the CLI's help and the config's checks read it. The rule-based ones (`CONDITIONS`):

- answer_only     the answer alone
- correct         gold label and gold evidence
- incorrect       the paper's: a uniformly random other label and as many distractors as the
                  gold evidence has (at least one)
- wrong_label     random other label, gold evidence
- wrong_evidence  gold label, random distractors
- swapped         the whole trace (label and evidence) of another example with another label

The teacher conditions (`traces/teacher.py`) register themselves beside them.

A distractor is a context item that is not gold, anchor or answer-bearing, does not repeat the
text of one, and does not state an answer. When an example's own context has none, the
distractors come from another example of the same dataset and subset in the same split (the
record names it in `evidence_from`). Every choice is drawn from a generator seeded by (seed,
kind of choice, example id): the same seed repeats it, another seed changes it, and
`incorrect` is exactly `wrong_label` plus `wrong_evidence`.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from tracekd.data import target_answers
from tracekd.data.schema import ContextItem, Example, normalize_item, states_answer
from tracekd.errors import InputError
from tracekd.registry import Registry
from tracekd.traces.render import Trace

BASELINE = "baseline"  # not an SFT condition: the untrained model, prompted the same way (an experiment's cells, a report's column)


def gold_trace(ex: Example) -> Trace:
    return Trace(ex.label, tuple(ex.texts(ex.evidence)), target_answers(ex))


def _rng(seed: int, what: str, ex: Example) -> random.Random:
    return random.Random(f"{seed}:{what}:{ex.id}")


def wrong_label(ex: Example, labels: tuple[str, ...], seed: int) -> str:
    others = [lab for lab in labels if lab != ex.label]
    if not others:
        raise InputError(f"a wrong label needs at least two labels; the label space is {list(labels)}")
    return _rng(seed, "label", ex).choice(others)


def distractors(ex: Example, donor: Example | None = None) -> list[ContextItem]:
    """The items of `ex`'s context (or of a donor example's) fit to be `ex`'s wrong evidence:
    not gold, anchor or answer-bearing, not the text of one of those, not stating an answer,
    and each text once."""
    protected = set(ex.evidence) | set(ex.anchor) | set(ex.answer_facts)
    seen = {normalize_item(c.text) for c in ex.context if c.id in protected}
    out = []
    for c in (donor or ex).context:
        key = normalize_item(c.text)
        if key in seen or (donor is None and c.id in protected) or states_answer(c.text, ex.answers):
            continue
        seen.add(key)
        out.append(c)
    return out


@dataclass(frozen=True, slots=True)
class WrongEvidence:
    items: tuple[ContextItem, ...]
    source: str  # the example whose context the items come from (`ex` itself, or a donor)


def wrong_evidence(ex: Example, seed: int, donors: list[Example] | tuple[Example, ...] = ()) -> WrongEvidence:
    """As many distractors as the gold evidence has (at least one; fewer when the context has
    fewer). With none in `ex`'s own context: from the first donor, in id order from a seeded
    starting point, that has some. Empty only when no donor has one either."""
    k = max(len(ex.evidence), 1)
    pool, source = distractors(ex), ex
    if not pool:
        ordered = sorted((d for d in donors if d.id != ex.id), key=lambda d: d.id)
        start = _rng(seed, "evidence-donor", ex).randrange(len(ordered)) if ordered else 0
        for j in range(len(ordered)):
            donor = ordered[(start + j) % len(ordered)]
            pool = distractors(ex, donor)
            if pool:
                source = donor
                break
    picked = sorted(_rng(seed, "evidence", ex).sample(range(len(pool)), min(k, len(pool))))
    return WrongEvidence(tuple(pool[i] for i in picked), source.id)


class _Partners:
    """Draws, for an example, another example of the same split with a different label."""

    def __init__(self, examples: list[Example]):
        self.by_label: dict[str, list[Example]] = {}
        for ex in examples:
            self.by_label.setdefault(ex.label, []).append(ex)
        self.labels = sorted(self.by_label)

    def draw(self, ex: Example, seed: int) -> Example:
        groups = [self.by_label[lab] for lab in self.labels if lab != ex.label]
        total = sum(map(len, groups))
        if total == 0:
            raise InputError("the swapped condition needs examples with at least two different labels")
        r = _rng(seed, "swap", ex).randrange(total)
        bounds, acc = [], 0
        for g in groups:
            acc += len(g)
            bounds.append(acc)
        gi = bisect_right(bounds, r)
        return groups[gi][r - (bounds[gi - 1] if gi else 0)]


class Split:
    """What a condition's targets are drawn from besides the example itself: the seed, the label
    space, and the examples of the split (another example's trace for `swapped`, distractors of the
    same dataset and subset for wrong evidence)."""

    def __init__(self, examples: list[Example], seed: int, labels: tuple[str, ...]):
        self.examples, self.seed, self.labels = examples, seed, labels

    @cached_property
    def partners(self) -> _Partners:
        return _Partners(self.examples)

    @cached_property
    def donors(self) -> dict[tuple[str, str], list[Example]]:
        out: dict[tuple[str, str], list[Example]] = {}
        for ex in self.examples:
            out.setdefault((ex.dataset, ex.subset), []).append(ex)
        return out


#: one example's target trace and perturbation record (None: none)
Target = tuple[Trace, dict[str, Any] | None]


def _perturbed(ex: Example, split: Split, label: bool, evidence: bool) -> Target:
    """The gold trace with a wrong label and / or wrong evidence (the record says which)."""
    trace_label, trace_evidence = ex.label, tuple(ex.texts(ex.evidence))
    pert: dict[str, Any] = {}
    if label:
        trace_label = pert["label"] = wrong_label(ex, split.labels, split.seed)
    if evidence:
        wrong = wrong_evidence(ex, split.seed, split.donors[(ex.dataset, ex.subset)])
        trace_evidence = tuple(c.text for c in wrong.items)
        pert["evidence"] = [c.id for c in wrong.items]
        if wrong.source != ex.id:
            pert["evidence_from"] = wrong.source
    return Trace(trace_label, trace_evidence, target_answers(ex)), pert


def _swapped(ex: Example, split: Split) -> Target:
    other = split.partners.draw(ex, split.seed)
    trace = Trace(other.label, tuple(other.texts(other.evidence)), target_answers(ex))
    return trace, {"swapped_with": other.id, "label": other.label, "evidence": list(other.evidence)}


@dataclass(frozen=True)
class Condition:
    """One SFT condition: its name, what its targets carry (`doc`), and how one example's target is
    built (`build(ex, split)`; None for the teacher conditions, built from a `tracekd teach` folder)."""

    name: str
    doc: str
    build: Callable[[Example, Split], Target] | None = None

    @property
    def teacher(self) -> bool:
        """Built from a `tracekd teach` folder, not by a rule."""
        return self.build is None


REGISTRY: Registry[Condition] = Registry("a condition")


def register(condition: Condition) -> Condition:
    """Add a condition to the registry under its `name` (a name is taken once)."""
    return REGISTRY.add(condition.name, condition)


#: the rule-based conditions, in their order
CONDITIONS = tuple(
    register(Condition(name, doc, build)).name
    for name, doc, build in (
        ("answer_only", "the answer alone", lambda ex, split: (Trace(None, None, target_answers(ex)), None)),
        ("correct", "gold label and gold evidence", lambda ex, split: (gold_trace(ex), None)),
        (
            "incorrect",
            "a random other label and as many distractors as the gold evidence has (the paper's)",
            lambda ex, split: _perturbed(ex, split, label=True, evidence=True),
        ),
        (
            "wrong_label",
            "a random other label, the gold evidence",
            lambda ex, split: _perturbed(ex, split, label=True, evidence=False),
        ),
        (
            "wrong_evidence",
            "the gold label, random distractors",
            lambda ex, split: _perturbed(ex, split, label=False, evidence=True),
        ),
        ("swapped", "the whole trace (label and evidence) of another example with another label", _swapped),
    )
)


def make_targets(examples: list[Example], condition: str, seed: int, labels: tuple[str, ...]) -> list[Target]:
    """The target trace and the perturbation record of each example (same order), by the
    registered condition's `build`."""
    c = REGISTRY.get(condition)
    if c is None or c.build is None:
        buildable = [n for n, other in REGISTRY.items() if not other.teacher]
        raise InputError(f"unknown condition {condition!r}; choose one of {', '.join(buildable)}")
    split = Split(examples, seed, labels)
    return [c.build(ex, split) for ex in examples]


def perturbation_counts(perturbations: list[dict[str, Any] | None]) -> dict[str, int]:
    """For the manifest: wrong evidence borrowed from another example, and wrong evidence left
    empty (no distractor anywhere in the subset)."""
    wrong = [p for p in perturbations if p is not None and "evidence" in p and "swapped_with" not in p]
    return {
        "evidence_from_other_example": sum("evidence_from" in p for p in wrong),
        "evidence_empty": sum(not p["evidence"] for p in wrong),
    }
