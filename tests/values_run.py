"""The tiny run whose every number is worked out by hand (report/test_results.py): one dataset,
one model, the untrained baseline (seed 0) and `correct` (seeds 0 and 1), 6 test items in 2
subsets of unequal size (A: a1-a4, B: b1-b2); the table of its outputs and the per-example row of
each (`output_row`), shared with report/test_beside.py."""

from __future__ import annotations

SUBSET = {"a1": "A", "a2": "A", "a3": "A", "a4": "A", "b1": "B", "b2": "B"}
ITEMS = list(SUBSET)
# Per output: label right, evidence exact set, evidence F1, anchor retrieved (None: the example has
# no anchor: b2, and B in the baseline), answer-bearing fact retrieved, answer right. Seed 0's b2 has no parsable answer;
# the two a4 outputs have no <think> trace (the paper's definitions do not evaluate them).
#            L  E  F1   anchor AF Y
CORRECT = {
    0: {
        "a1": (1, 1, 1.0, 1, 1, 1),
        "a2": (1, 0, 0.5, 1, 0, 1),
        "a3": (0, 1, 1.0, 1, 1, 1),
        "a4": (0, 0, 0.0, 0, 0, 0),
        "b1": (1, 1, 1.0, 1, 1, 1),
        "b2": (0, 0, 0.0, None, 0, 0),
    },
    1: {
        "a1": (1, 1, 1.0, 1, 1, 1),
        "a2": (1, 1, 1.0, 0, 1, 0),
        "a3": (0, 0, 0.5, 1, 0, 1),
        "a4": (0, 0, 0.0, 0, 0, 0),
        "b1": (1, 0, 0.5, 1, 1, 0),
        "b2": (1, 1, 1.0, None, 1, 1),
    },
}
# The baseline: no label ever right, no evidence, answers right for a1 and b1 only.
BASELINE = {i: (0, 0, 0.0, None if SUBSET[i] == "B" else 0, 0, int(i in ("a1", "b1"))) for i in ITEMS}
UNPARSABLE = {("correct", 0, "b2")}
NO_THINK = {"a4"}


def output_row(item: str, seed: int, flags: tuple, condition: str) -> dict:
    lab, ev, f1, anchor, fact, ans = flags
    parsed = (condition, seed, item) not in UNPARSABLE
    think = item not in NO_THINK
    output = (f"<think>The category is: {'gold' if lab else 'other'}.</think>" if think else "") + (
        "<answer>['x']</answer>" if parsed else ""
    )
    return {
        "id": f"values/{item}",
        "subset": SUBSET[item],
        "label": "gold",
        "question": f"question {item}?",
        "gold": {"label": "gold", "evidence": ["fact"], "anchor": [], "answer_facts": ["fact"], "answers": ["x"]},
        "flags": [],
        "status": "ok" if parsed else "unparsable",
        "parsed": {
            "label": "gold" if lab else "other",
            "evidence": ["fact"] if ev else [],
            "answers": ["x"] if parsed else None,
        },
        "answer": {"correct": bool(ans), "em": float(ans)},
        "label_correct": bool(lab),
        "evidence": {
            "precision": f1,
            "recall": f1,
            "f1": f1,
            "exact": bool(ev),
            "matched": ["1"] if ev else [],
            "unmatched": 0,
        },
        "evidence_tolerant": {
            "precision": f1,
            "recall": f1,
            "f1": f1,
            "exact": bool(ev),
            "matched": [],
            "unmatched": 0,
        },
        "anchor_retrieved": None if anchor is None else bool(anchor),
        "answer_fact_retrieved": bool(fact),
        "trace_correct": bool(lab and ev),
        "paper": {"label_correct": bool(lab), "evidence_correct": True, "trace_correct": bool(lab)} if think else None,
        "output": output,
    }
