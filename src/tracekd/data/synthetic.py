"""tracekd's own seeded generators: no files needed, any size.

- `synthetic-temporal`: questions in the CoTempQA shape ("While X was ..., which ... did X
  ... during the same time period?") over generated dated facts. The label (equal / during /
  overlap / mix) is computed from the time intervals of the anchor and answer facts as they
  are written in the context, and the evidence by CoTempQA's own retrieval rule.
- `synthetic-babi`: bAbI-style stories for single / two / three supporting facts, counting and
  yes/no questions, with the supporting sentence ids known by construction.

Example i depends only on (seed, i), so a larger `size` extends a smaller one.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

from pydantic import Field

from tracekd.data.babi import Babi, BabiTaskOptions, task_label
from tracekd.data.base import DatasetOptions, register
from tracekd.data.cotempqa import CoTempQA, CoTempQAOptions, parse_fact
from tracekd.data.schema import ContextItem, Example
from tracekd.data.temporal import TEMPORAL_LABELS, combined_relation
from tracekd.errors import InputError

_FIRST = (
    "Ada",
    "Bruno",
    "Clara",
    "Dmitri",
    "Elena",
    "Farid",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Keiko",
    "Luca",
    "Maya",
    "Nils",
    "Olga",
    "Pablo",
    "Rosa",
    "Sven",
    "Tara",
    "Viktor",
)
_LAST = (
    "Albers",
    "Brandt",
    "Castillo",
    "Dumont",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Horvath",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrov",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Tanaka",
)
#: family -> (fact phrase, question phrase, target question, objects)
_FAMILIES = {
    "position": (
        "holds the position of",
        "was holding the position of",
        "which position did {s} hold",
        (
            "mayor",
            "treasurer",
            "minister of finance",
            "ambassador to Peru",
            "chief justice",
            "governor",
            "party chair",
            "state senator",
            "secretary of state",
            "dean of law",
        ),
    ),
    "employer": (
        "works for",
        "was working for",
        "which employer did {s} work for",
        (
            "Nordic Steel",
            "Harbor University",
            "City Museum",
            "Atlas Bank",
            "Blue River Press",
            "Pine Labs",
            "Orion Shipping",
            "Central Hospital",
            "Delta Rail",
            "Summit Foods",
        ),
    ),
    "member": (
        "is a member of the",
        "was a member of",
        "which political party did {s} belong to",
        (
            "Green Party",
            "Labour Party",
            "Liberal Union",
            "Civic Forum",
            "National Front",
            "Farmers Party",
            "Social Democrats",
            "Unity List",
            "Reform Alliance",
            "Pirate Party",
        ),
    ),
    "school": (
        "attended",
        "attended",
        "which school did {s} attend",
        (
            "Oak Hill Academy",
            "Lakeside College",
            "Riverside High School",
            "Kings College",
            "Northgate Institute",
            "Elm Street School",
            "Westfield University",
            "Bay Polytechnic",
            "St Mary's School",
            "Valley Conservatory",
        ),
    ),
    "team": (
        "plays for",
        "was playing for",
        "which team did {s} play for",
        (
            "FC Aurora",
            "Red Lions",
            "Harbor United",
            "SC Borealis",
            "Athletic Vale",
            "Iron City FC",
            "Union Marítima",
            "Blue Comets",
            "Real Sierra",
            "Sporting Norte",
        ),
    ),
}
#: RELATIONS in the order a `mix` example draws two of them (part of the seeded generator: changing
#: it would change every example of every seed)
_MIX_DRAW_ORDER = ("equal", "during", "overlap")
_SUFFIXES = (
    "during the same time period",
    "within the same time interval",
    "concurrently",
    "simultaneously",
    "at the same time",
)


def _span(s: int, e: int) -> str:
    return f"from {s} to {e}"


def _interval_for(rel: str, y0: int, y1: int, rng: random.Random) -> tuple[int, int]:
    if rel == "equal":
        return y0, y1
    if rel == "during":
        if rng.random() < 0.5:
            s = rng.randint(y0 + 1, y1 - 2)
            return s, rng.randint(s + 1, y1 - 1)
        return y0 - rng.randint(1, 4), y1 + rng.randint(1, 4)
    # overlap: partial, neither interval inside the other
    if rng.random() < 0.5:
        return y0 - rng.randint(1, 5), rng.randint(y0 + 1, y1 - 1)
    return rng.randint(y0 + 1, y1 - 1), y1 + rng.randint(1, 5)


def generate_temporal(i: int, seed: int) -> Example:
    rng = random.Random(f"synthetic-temporal:{seed}:{i}")
    target = TEMPORAL_LABELS[i % 4]
    subj = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    fam1 = rng.choice(sorted(_FAMILIES))
    fam2 = fam1 if rng.random() < 0.5 else rng.choice(sorted(set(_FAMILIES) - {fam1}))
    phrase1, q_phrase, _, objs1 = _FAMILIES[fam1]
    phrase2, _, target_q, objs2 = _FAMILIES[fam2]
    o1 = rng.choice(objs1)
    y0 = rng.randint(1900, 2000)
    y1 = y0 + rng.randint(4, 12)
    if target == "mix":
        rels = rng.sample(_MIX_DRAW_ORDER, 2)
        rels += [rng.choice(rels)] * rng.randint(0, 1)
    else:
        rels = [target] * rng.randint(1, 2)
    answer_objs = rng.sample([o for o in objs2 if o != o1], len(rels) + rng.randint(2, 3))
    facts = [(f"{subj} {phrase1} {o1} {_span(y0, y1)}.", "anchor")]
    answers = []
    for rel, obj in zip(rels, answer_objs):
        s, e = _interval_for(rel, y0, y1, rng)
        facts.append((f"{subj} {phrase2} {obj} {_span(s, e)}.", "answer"))
        answers.append(obj)
    for obj in answer_objs[len(rels) :]:  # same relation, disjoint in time
        if rng.random() < 0.5:
            e = y0 - rng.randint(1, 8)
            s = e - rng.randint(1, 6)
        else:
            s = y1 + rng.randint(1, 8)
            e = s + rng.randint(1, 6)
        facts.append((f"{subj} {phrase2} {obj} {_span(s, e)}.", "distractor"))
    for fam in rng.sample(sorted(set(_FAMILIES) - {fam1, fam2}), 2):
        phrase, _, _, objs = _FAMILIES[fam]
        for obj in rng.sample(objs, rng.randint(1, 2)):
            s = rng.randint(1890, 2015)
            facts.append((f"{subj} {phrase} {obj} {_span(s, s + rng.randint(1, 10))}.", "distractor"))
    rng.shuffle(facts)
    question = f"While {subj} {q_phrase} {o1}, {target_q.format(s=subj)} {rng.choice(_SUFFIXES)}?"
    return Example(
        id=f"synthetic-temporal/{i}",
        dataset="synthetic-temporal",
        subset=target,
        question=question,
        context=tuple(ContextItem(f"f{k}", t) for k, (t, _) in enumerate(facts)),
        answers=tuple(answers),
        meta={"target": target, "roles": tuple(r for _, r in facts)},
    )


class GeneratedOptions(DatasetOptions):
    """A generated dataset's number of examples."""

    size: int | None = Field(None, ge=1, description="Number of examples (generated datasets).")


class _Generated:
    """A generated dataset: `size` examples drawn from the data seed, no source."""

    name: ClassVar[str]
    options: Any  # its Options derive from GeneratedOptions

    def check_readable(self, source: str | None) -> None:
        if source:
            raise InputError(f"dataset {self.name!r} is generated; give its size, not a source", key="source")
        self._size()

    def _size(self) -> int:
        if self.options.size is None:
            raise InputError(f"dataset {self.name!r} needs a size (a number of examples, at least 1)", key="size")
        return self.options.size


class SyntheticTemporalOptions(GeneratedOptions, CoTempQAOptions):
    """`size`, and CoTempQA's options."""


@register
class SyntheticTemporal(_Generated, CoTempQA):
    name = "synthetic-temporal"
    labels = TEMPORAL_LABELS
    synthetic = True
    Options = SyntheticTemporalOptions

    def read(self, source: str | None) -> list[Example]:
        out = [generate_temporal(i, self.seed) for i in range(self._size())]
        return [ex for ex in out if ex.subset in self.subsets]

    def classify(self, ex: Example) -> str:
        """The relation between the anchor's interval and the answer facts' intervals."""
        facts = {f.id: f for f in (parse_fact(c) for c in ex.context) if f is not None}
        r = self.retrieve(ex)
        others = [facts[i].when for i in r.evidence if i in facts and i not in r.anchor]
        if len(r.anchor) != 1 or not others:
            return "none"
        return combined_relation(facts[r.anchor[0]].when, others)


class SyntheticBabiOptions(GeneratedOptions, BabiTaskOptions):
    """`size`, and bAbI's tasks."""


# -- bAbI-style stories -----------------------------------------------------------------------
_PEOPLE = ("Mary", "John", "Sandra", "Daniel")
_PLACES = ("bathroom", "hallway", "kitchen", "garden", "office", "bedroom")
_OBJECTS = ("football", "apple", "milk")
_MOVE = ("moved to the", "went to the", "journeyed to the", "travelled to the", "went back to the")
_GET = ("picked up the", "got the", "grabbed the", "took the")
_DROP = ("dropped the", "discarded the", "put down the", "left the")
_NUMBERS = ("none", "one", "two", "three")
BABI_TASKS = (1, 2, 3, 7, 6)


class _Story:
    def __init__(self, rng: random.Random, person: str):
        self.rng, self.person = rng, person
        self.lines: list[str] = []
        self.others = [p for p in _PEOPLE if p != person]

    def say(self, who: str, verbs, what: str) -> str:
        self.lines.append(f"{who} {self.rng.choice(verbs)} {what}.")
        return str(len(self.lines))

    def noise(self, lo: int, hi: int, me_too: bool = False) -> None:
        for _ in range(self.rng.randint(lo, hi)):
            who = self.rng.choice(self.others + ([self.person] if me_too else []))
            self.say(who, _MOVE, self.rng.choice(_PLACES))


def generate_babi(i: int, seed: int) -> Example:
    rng = random.Random(f"synthetic-babi:{seed}:{i}")
    task = BABI_TASKS[i % len(BABI_TASKS)]
    p = rng.choice(_PEOPLE)
    st = _Story(rng, p)
    st.noise(1, 4, me_too=True)
    if task == 1:
        place = rng.choice(_PLACES)
        support = [st.say(p, _MOVE, place)]
        st.noise(0, 3)
        question, answer = f"Where is {p}?", [place]
    elif task == 2:
        obj, place = rng.choice(_OBJECTS), rng.choice(_PLACES)
        support = [st.say(p, _GET, obj)]
        st.noise(0, 2)
        support.append(st.say(p, _MOVE, place))
        st.noise(0, 2)
        question, answer = f"Where is the {obj}?", [place]
    elif task == 3:
        obj = rng.choice(_OBJECTS)
        first, second = rng.sample(_PLACES, 2)
        support = [st.say(p, _MOVE, first)]
        st.noise(0, 2)
        support.append(st.say(p, _GET, obj))
        st.noise(0, 2)
        support.append(st.say(p, _MOVE, second))
        st.noise(0, 2)
        question, answer = f"Where was the {obj} before the {second}?", [first]
    elif task == 7:
        held = rng.sample(_OBJECTS, rng.randint(1, 3))
        support = []
        for obj in held:
            support.append(st.say(p, _GET, obj))
            st.noise(0, 1)
        if rng.random() < 0.5:
            support.append(st.say(p, _DROP, rng.choice(held)))
            count = len(held) - 1
        else:
            count = len(held)
        st.noise(0, 2)
        question, answer = f"How many objects is {p} carrying?", [_NUMBERS[count]]
    else:  # task 6, yes/no
        place = rng.choice(_PLACES)
        support = [st.say(p, _MOVE, place)]
        st.noise(0, 3)
        asked = place if rng.random() < 0.5 else rng.choice([x for x in _PLACES if x != place])
        question, answer = f"Is {p} in the {asked}?", ["yes" if asked == place else "no"]
    return Example(
        id=f"synthetic-babi/qa{task}/{i}",
        dataset="synthetic-babi",
        subset=f"qa{task}",
        question=question,
        context=tuple(ContextItem(str(k), t) for k, t in enumerate(st.lines, start=1)),
        answers=tuple(answer),
        meta={"task": task, "supporting": tuple(support)},
    )


@register
class SyntheticBabi(_Generated, Babi):
    name = "synthetic-babi"
    labels = tuple(task_label(t) for t in BABI_TASKS)
    synthetic = True
    Options = SyntheticBabiOptions
    preset = "all"  # every generated question

    def read(self, source: str | None) -> list[Example]:
        keep = {f"qa{t}" for t in self.tasks}
        return [ex for ex in (generate_babi(i, self.seed) for i in range(self._size())) if ex.subset in keep]

    def label_space(self, examples: list[Example]) -> tuple[str, ...]:
        return self.labels
