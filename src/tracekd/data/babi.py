"""bAbI QA tasks (Weston et al. 2015), the official text format.

Every question is one example; its context is the story sentences before it (question lines
are not context), its gold evidence the supporting sentence ids given in the file (split into
answer-bearing sentences, which state an answer, and anchor sentences, which do not), and its
label the task name. Preset `paper` keeps the paper's tasks, the first question per story and, as the paper's code
did, 10 % of each task's test questions (3,773 train + 376 test = the paper's 4,149).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from tracekd.data.base import Dataset, DatasetOptions, Retrieval, register
from tracekd.data.reading import check_unique_ids, load_hub, resolve_source
from tracekd.data.schema import ContextItem, Example, clean_text, states_answer
from tracekd.errors import InputError
from tracekd.jsonio import read_lines

TASKS = {
    1: "single-supporting-fact",
    2: "two-supporting-facts",
    3: "three-supporting-facts",
    4: "two-arg-relations",
    5: "three-arg-relations",
    6: "yes-no-questions",
    7: "counting",
    8: "lists-sets",
    9: "simple-negation",
    10: "indefinite-knowledge",
    11: "basic-coreference",
    12: "conjunction",
    13: "compound-coreference",
    14: "time-reasoning",
    15: "basic-deduction",
    16: "basic-induction",
    17: "positional-reasoning",
    18: "size-reasoning",
    19: "path-finding",
    20: "agents-motivations",
}
PAPER_TASKS = (1, 2, 4, 7, 8, 12, 14, 15, 16, 17, 18)
_FILE_RE = re.compile(r"^qa(\d+)_[\w-]+_(train|test)\.txt$")
_LINE_RE = re.compile(r"^(\d+) (.*)$")
#: how a free-form trace states each task (`Dataset.label_lexicon`)
LABEL_LEXICON = {
    "single-supporting-fact": ("single supporting fact", "one supporting fact", "single fact"),
    "two-supporting-facts": ("two supporting facts", "two facts"),
    "three-supporting-facts": ("three supporting facts", "three facts"),
    "two-arg-relations": ("two arg relations", "two argument relation"),
    "three-arg-relations": ("three arg relations", "three argument relation"),
    "yes-no-questions": ("yes no questions", "yes no question", "yes or no"),
    "counting": ("counting", "count"),
    "lists-sets": ("lists sets", "list of", "set of"),
    "simple-negation": ("simple negation", "negation"),
    "indefinite-knowledge": ("indefinite knowledge", "indefinite"),
    "basic-coreference": ("basic coreference", "coreference"),
    "conjunction": ("conjunction",),
    "compound-coreference": ("compound coreference",),
    "time-reasoning": ("time reasoning", "temporal reasoning"),
    "basic-deduction": ("basic deduction", "deduction", "deduce"),
    "basic-induction": ("basic induction", "induction", "induce"),
    "positional-reasoning": ("positional reasoning", "positional"),
    "size-reasoning": ("size reasoning",),
    "path-finding": ("path finding", "pathfinding"),
    "agents-motivations": ("agents motivations", "motivation", "motivations"),
}


def task_label(task_no: int) -> str:
    return TASKS[task_no]


def task_numbers(tasks: list[str]) -> tuple[int, ...]:
    """`qa3` or `3` -> 3; a ValueError for anything but tasks 1-20."""
    try:
        numbers = tuple(int(str(t).removeprefix("qa")) for t in tasks)
    except ValueError:
        raise ValueError(f"bAbI tasks are numbers 1-20 or qa1-qa20, got {list(tasks)}") from None
    if any(t not in TASKS for t in numbers):
        raise ValueError(f"bAbI tasks are 1-20 (qa1-qa20), got {list(tasks)}")
    return numbers


class BabiTaskOptions(DatasetOptions):
    """`subsets`: tasks (qa1-qa20 or 1-20)."""

    @field_validator("subsets")
    @classmethod
    def _tasks(cls, v: list[str] | None) -> list[str] | None:
        if v:
            task_numbers(v)
        return v


class BabiOptions(BabiTaskOptions):
    """The tasks, and the preset: all tasks and questions, or the paper's."""

    preset: Literal["all", "paper"] = Field(
        "all",
        description="bAbI: all (every question) or paper (tasks 1, 2, 4, 7, 8, 12, 14-18; first question per story; "
        "10 % of each task's test questions: 4,149 examples).",
    )


def parse_babi(lines, file, task: int, split: str, first_only: bool, dataset: str = "babi") -> list[Example]:
    """Parse the bAbI text format: `N sentence` and `N question?<TAB>answer<TAB>ids`."""
    out: list[Example] = []
    story: list[ContextItem] = []
    seen_q = False
    qno = 0
    for lineno, raw in enumerate(lines, start=1):
        line = raw.rstrip("\n")
        if not line.strip():
            continue
        m = _LINE_RE.match(line)
        if not m:
            raise InputError("bAbI line does not start with a sentence number", file, lineno)
        n, rest = m.group(1), m.group(2)
        if n == "1":
            story, seen_q = [], False
        if "\t" not in rest:
            if "?" in rest:  # bAbI's story sentences never ask: a question line that lost its tabs
                raise InputError(
                    "bAbI question line needs 'question<TAB>answer<TAB>supporting ids' (it has no tab)", file, lineno
                )
            story.append(ContextItem(n, clean_text(rest)))
            continue
        parts = rest.split("\t")
        if len(parts) < 3 or not parts[1].strip():
            raise InputError("bAbI question line needs 'question<TAB>answer<TAB>supporting ids'", file, lineno)
        question, answer, support = parts[0], parts[1], parts[2]
        answers = tuple(a.strip() for a in answer.split(",") if a.strip())
        ids = tuple(support.split())
        if not clean_text(question):
            raise InputError("bAbI question is empty", file, lineno)
        if not answers:
            raise InputError(f"bAbI answer {answer!r} names no answer", file, lineno)
        if not ids:
            raise InputError("bAbI question has no supporting sentence ids", file, lineno)
        known = {c.id for c in story}
        bad = [i for i in ids if i not in known]
        if bad:
            raise InputError(
                f"supporting id(s) {' '.join(bad)} are not story sentences before the question", file, lineno
            )
        if not (first_only and seen_q):
            out.append(
                Example(
                    id=f"{dataset}/qa{task}/{split}/{qno}",
                    dataset=dataset,
                    subset=f"qa{task}",
                    split=split,
                    question=clean_text(question),
                    context=tuple(story),
                    answers=answers,
                    meta={"task": task, "supporting": ids},
                )
            )
        qno += 1
        seen_q = True
    return out


PAPER_TEST_SHARE = 0.1


def paper_test_tenth(examples: list[Example], seed: int) -> list[Example]:
    """The paper's test set: its code (`filter_test_dataset` in the authors' bAbI preprocessing)
    keeps int(10 %) of each task's test questions, drawn at random - 376 of 3,774 on the paper's
    tasks, so 3,773 train + 376 test = the paper's 4,149 examples. The authors drew without a seed;
    here the draw is seeded by (seed, task)."""
    keep: set[str] = set()
    for task in sorted({ex.meta["task"] for ex in examples}):
        test = sorted(ex.id for ex in examples if ex.meta["task"] == task and ex.split == "test")
        keep |= set(random.Random(f"{seed}:paper-test-share:qa{task}").sample(test, int(len(test) * PAPER_TEST_SHARE)))
    return [ex for ex in examples if ex.split != "test" or ex.id in keep]


@register
class Babi(Dataset):
    name = "babi"
    labels = tuple(TASKS.values())
    answer_scorer = "babi"
    label_lexicon = LABEL_LEXICON
    Options: ClassVar[type[BabiTaskOptions]] = BabiOptions

    def __init__(self, seed: int = 0, **options):
        super().__init__(seed, **options)
        self.first_only = self.preset == "paper"
        tasks = self.options.subsets
        self.tasks = task_numbers(tasks) if tasks else (PAPER_TASKS if self.preset == "paper" else tuple(TASKS))

    @property
    def preset(self) -> str:
        return self.options.preset

    def read(self, source: str | None) -> list[Example]:
        examples = self._read(source)
        return paper_test_tenth(examples, self.seed) if self.preset == "paper" else examples

    def _read(self, source: str | None) -> list[Example]:
        kind, where = resolve_source(source, self.name)
        if kind == "hub":
            return self._read_hub(str(where))
        path = Path(where)
        files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
        if path.is_dir() and not files and (path / "en").is_dir():
            files = sorted((path / "en").glob("*.txt"))
        out: list[Example] = []
        found: dict[tuple[int, str], Path] = {}
        for f in files:
            m = _FILE_RE.match(f.name)
            if not m:
                if path.is_dir():
                    continue
                raise InputError("not a bAbI task file name (expected qaN_<task>_{train,test}.txt)", f)
            task, split = int(m.group(1)), m.group(2)
            if task not in self.tasks:
                continue
            if (task, split) in found:
                raise InputError(
                    f"two files for bAbI task {task} ({split}): {found[task, split].name} and {f.name}", path
                )
            found[task, split] = f
            out += parse_babi((line for _, line in read_lines(f)), f, task, split, self.first_only)
        missing = [t for t in self.tasks if t not in {task for task, _ in found}]
        if path.is_dir() and missing:
            raise InputError(f"no files for bAbI task(s) {', '.join(map(str, missing))}", path)
        out.sort(key=lambda e: (e.meta["task"], e.split != "train"))
        check_unique_ids(out, path)
        return out

    def _read_hub(self, hub_id: str) -> list[Example]:
        out: list[Example] = []
        for task in self.tasks:
            dd = load_hub(hub_id, f"en-qa{task}")
            for split in ("train", "test"):
                if split not in dd:
                    continue
                lines = []
                for story in dd[split]:
                    s = story["story"]
                    for sid, typ, text, sup, ans in zip(
                        s["id"], s["type"], s["text"], s["supporting_ids"], s["answer"]
                    ):
                        lines.append(f"{sid} {text}" if typ == 0 else f"{sid} {text}\t{ans}\t{' '.join(sup)}")
                out += parse_babi(lines, f"{hub_id}[en-qa{task}/{split}]", task, split, self.first_only)
        return out

    def classify(self, ex: Example) -> str:
        return task_label(ex.meta["task"])

    def retrieve(self, ex: Example) -> Retrieval:
        """The supporting sentences; those that state an answer are the answer-bearing facts,
        the others (e.g. "John picked up the milk." before "John went to the kitchen.") the anchor."""
        ids = tuple(ex.meta["supporting"])
        bearing = tuple(i for i in ids if states_answer(ex.item_text(i), ex.answers))
        return Retrieval(ids, anchor=tuple(i for i in ids if i not in bearing), answer_facts=bearing)

    def check_example(self, ex: Example, path) -> None:
        if not re.fullmatch(r"qa([1-9]|1[0-9]|20)", ex.subset):
            raise InputError(f"example {ex.id!r}: subset {ex.subset!r} is not a bAbI task (qa1-qa20)", path)

    def answer_summary(self, accuracy_by_subset: dict[str, float]) -> dict:
        """bAbI's usual headline: how many tasks reach 95 % accuracy."""
        return {
            "tasks": len(accuracy_by_subset),
            "tasks_at_or_above_95": sum(a >= 0.95 for a in accuracy_by_subset.values()),
        }

    def label_space(self, examples: list[Example]) -> tuple[str, ...]:
        present = sorted({ex.label for ex in examples}, key=self.labels.index)
        return tuple(present) if len(present) > 1 else self.labels
