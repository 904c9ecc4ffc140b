"""SFT conditions: which trace each training target carries. The answer is always correct.

- answer_only     the answer alone
- correct         gold label and gold evidence
- incorrect       the paper's: a uniformly random other label and as many distractors as the
                  gold evidence has (at least one)
- wrong_label     random other label, gold evidence
- wrong_evidence  gold label, random distractors
- swapped         the whole trace (label and evidence) of another example with another label

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
from dataclasses import dataclass
from typing import Any

from tracekd.data import target_answers
from tracekd.data.schema import ContextItem, Example, normalize_item, states_answer
from tracekd.errors import InputError
from tracekd.traces.render import Trace

CONDITIONS = ("answer_only", "correct", "incorrect", "wrong_label", "wrong_evidence", "swapped")
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


def make_targets(
    examples: list[Example], condition: str, seed: int, labels: tuple[str, ...]
) -> list[tuple[Trace, dict[str, Any] | None]]:
    """The target trace and the perturbation record of each example (same order)."""
    if condition not in CONDITIONS:
        raise InputError(f"unknown condition {condition!r}; choose one of {', '.join(CONDITIONS)}")
    partners = _Partners(examples) if condition == "swapped" else None
    donors: dict[tuple[str, str], list[Example]] = {}
    if condition in ("incorrect", "wrong_evidence"):
        for ex in examples:
            donors.setdefault((ex.dataset, ex.subset), []).append(ex)
    out: list[tuple[Trace, dict[str, Any] | None]] = []
    for ex in examples:
        answers = target_answers(ex)
        if condition == "answer_only":
            out.append((Trace(None, None, answers), None))
            continue
        if condition == "correct":
            out.append((gold_trace(ex), None))
            continue
        if condition == "swapped":
            assert partners is not None  # made for this condition
            other = partners.draw(ex, seed)
            trace = Trace(other.label, tuple(other.texts(other.evidence)), answers)
            out.append((trace, {"swapped_with": other.id, "label": other.label, "evidence": list(other.evidence)}))
            continue
        label, evidence = ex.label, tuple(ex.texts(ex.evidence))
        pert: dict[str, Any] = {}
        if condition in ("incorrect", "wrong_label"):
            label = pert["label"] = wrong_label(ex, labels, seed)
        if condition in ("incorrect", "wrong_evidence"):
            wrong = wrong_evidence(ex, seed, donors[(ex.dataset, ex.subset)])
            evidence = tuple(c.text for c in wrong.items)
            pert["evidence"] = [c.id for c in wrong.items]
            if wrong.source != ex.id:
                pert["evidence_from"] = wrong.source
        out.append((Trace(label, evidence, answers), pert))
    return out


def perturbation_counts(perturbations: list[dict[str, Any] | None]) -> dict[str, int]:
    """For the manifest: wrong evidence borrowed from another example, and wrong evidence left
    empty (no distractor anywhere in the subset)."""
    wrong = [p for p in perturbations if p is not None and "evidence" in p and "swapped_with" not in p]
    return {
        "evidence_from_other_example": sum("evidence_from" in p for p in wrong),
        "evidence_empty": sum(not p["evidence"] for p in wrong),
    }
