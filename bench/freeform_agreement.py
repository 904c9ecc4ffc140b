"""Measurement (not speed): how well the free-form step scorer (score/freeform.py) reads traces,
the numbers in docs/scoring.md (the code is tests/freeform_measure.py, shared with the tests).

1. Rule-based traces, where the parser gives the truth: every CoTempQA example and 2,000 bAbI
   questions under the five trace conditions in both templates, and the paper's published trace
   outputs (real model outputs). Per trace: does the free-form scorer agree with the parser on
   each step (label, evidence, anchor, answer-bearing fact, full trace) and on the cited set?
2. Hand-labelled free-form traces (tests/fixtures/freeform): precision and recall of the cited
   items (per item), and per step of "the step is right" (per trace), on the development traces
   the scorer was adjusted on and on the held-out ones.

Prints JSON. `python bench/freeform_agreement.py [--quick]` (quick: 300 examples per dataset).
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from freeform_measure import agreement, fixture_examples, hand_labelled, rendered  # noqa: E402
from tracekd.data import get_dataset  # noqa: E402
from tracekd.prepare import assign_splits  # noqa: E402
from tracekd.rescore.formats import read_trace_check_qa, record_key  # noqa: E402
from tracekd.rescore.run import condition_from_name  # noqa: E402

SHARED = ROOT.parent / "shared"


def rule_based(name: str, source: Path, limit: int) -> dict:
    ds = get_dataset(name)
    examples = assign_splits(ds.load(str(source)), 42, 0.2)
    if limit < len(examples):
        examples = random.Random(0).sample(examples, limit)
    return {"examples": len(examples), **agreement(rendered(ds, examples))}


def published() -> dict:
    ds = get_dataset("cotempqa")
    index = {
        record_key(ex.question, [c.text for c in ex.context]): ex for ex in ds.read(str(SHARED / "data" / "cotempqa"))
    }
    files = [
        p
        for p in sorted((SHARED / "reference-outputs" / "cotempqa" / "evaluation_outputs").glob("*/*.json"))
        if condition_from_name(p.name) != "answer_only"
    ]  # answer-only outputs have no trace to read
    return {
        "files": len(files),
        **agreement(
            (rec["prediction"], ds.decompose(ex)) for path in files for ex, rec in read_trace_check_qa(path, index)
        ),
    }


def main() -> None:
    quick = "--quick" in sys.argv
    t = time.perf_counter()
    result = {
        "rule_based": {
            "cotempqa": rule_based("cotempqa", SHARED / "data" / "cotempqa", 300 if quick else 10**9),
            "babi": rule_based("babi", SHARED / "data" / "babi" / "en", 300 if quick else 2000),
        },
        "published_outputs": published(),
        "hand_labelled": hand_labelled(fixture_examples(SHARED / "data")),
    }
    result["seconds"] = round(time.perf_counter() - t, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
