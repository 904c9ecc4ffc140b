"""SFT conditions: which trace each training target carries. The answer is always correct.

- answer_only     the answer alone
- correct         gold label and gold evidence
- incorrect       the paper's: a uniformly random other label and as many non-gold context
                  items as the gold evidence has (never an answer-bearing or anchor item)
- wrong_label     random other label, gold evidence
- wrong_evidence  gold label, random non-gold evidence
- swapped         the whole trace (label and evidence) of another example with another label

Every choice is drawn from a generator seeded by (seed, kind of choice, example id): the same
seed repeats it, another seed changes it, and `incorrect` is exactly `wrong_label` plus
`wrong_evidence`.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from typing import Any

from tracekd.data.schema import Example
from tracekd.errors import InputError
from tracekd.traces.render import Trace

CONDITIONS = ("answer_only", "correct", "incorrect", "wrong_label", "wrong_evidence", "swapped")


def gold_trace(ex: Example) -> Trace:
    return Trace(ex.label, tuple(ex.texts(ex.evidence)), ex.answers)


def _rng(seed: int, what: str, ex: Example) -> random.Random:
    return random.Random(f"{seed}:{what}:{ex.id}")


def wrong_label(ex: Example, labels: tuple[str, ...], seed: int) -> str:
    others = [lab for lab in labels if lab != ex.label]
    if not others:
        raise InputError(f"a wrong label needs at least two labels; the label space is {list(labels)}")
    return _rng(seed, "label", ex).choice(others)


def wrong_evidence(ex: Example, seed: int) -> tuple[str, ...]:
    """Ids of as many non-gold, non-anchor, non-answer-bearing items as the gold evidence has."""
    protected = set(ex.evidence) | set(ex.anchor) | set(ex.answer_facts)
    pool = [c.id for c in ex.context if c.id not in protected]
    k = min(max(len(ex.evidence), 1), len(pool))
    picked = sorted(_rng(seed, "evidence", ex).sample(range(len(pool)), k))
    return tuple(pool[i] for i in picked)


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


def make_targets(
    examples: list[Example], condition: str, seed: int, labels: tuple[str, ...]
) -> list[tuple[Trace, dict[str, Any] | None]]:
    """The target trace and the perturbation record of each example (same order)."""
    if condition not in CONDITIONS:
        raise InputError(f"unknown condition {condition!r}; choose one of {', '.join(CONDITIONS)}")
    partners = _Partners(examples) if condition == "swapped" else None
    out: list[tuple[Trace, dict[str, Any] | None]] = []
    for ex in examples:
        if condition == "answer_only":
            out.append((Trace(None, None, ex.answers), None))
            continue
        if condition == "correct":
            out.append((gold_trace(ex), None))
            continue
        if condition == "swapped":
            other = partners.draw(ex, seed)
            trace = Trace(other.label, tuple(other.texts(other.evidence)), ex.answers)
            out.append((trace, {"swapped_with": other.id, "label": other.label, "evidence": list(other.evidence)}))
            continue
        label, evidence = ex.label, ex.evidence
        pert: dict[str, Any] = {}
        if condition in ("incorrect", "wrong_label"):
            label = pert["label"] = wrong_label(ex, labels, seed)
        if condition in ("incorrect", "wrong_evidence"):
            evidence = wrong_evidence(ex, seed)
            pert["evidence"] = list(evidence)
        out.append((Trace(label, tuple(ex.texts(evidence)), ex.answers), pert))
    return out
