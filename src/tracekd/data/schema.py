"""The one example schema shared by every dataset."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from tracekd.errors import InputError


@dataclass(frozen=True, slots=True)
class ContextItem:
    """One piece of context (a fact, a story sentence, a passage) with a stable id."""

    id: str
    text: str


@dataclass(frozen=True, slots=True)
class Example:
    """One open-book QA example, decomposed into a classification and a retrieval step.

    `label` is the gold classification label, `evidence` the ids of the gold evidence items
    (the Information Retrieval step). `anchor` and `answer_facts` are the ids of the items the
    decomposition found (for CoTempQA: the fact the question is conditioned on, and the facts
    that carry the answer); perturbations never pick them as wrong evidence. `flags` records
    anything unusual the loader or the decomposition noticed.
    """

    id: str
    dataset: str
    subset: str
    question: str
    context: tuple[ContextItem, ...]
    answers: tuple[str, ...]
    split: str = ""
    label: str = ""
    evidence: tuple[str, ...] = ()
    anchor: tuple[str, ...] = ()
    answer_facts: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def item_text(self, item_id: str) -> str:
        for item in self.context:
            if item.id == item_id:
                return item.text
        raise KeyError(item_id)

    def texts(self, ids: tuple[str, ...] | list[str]) -> list[str]:
        by_id = {c.id: c.text for c in self.context}
        return [by_id[i] for i in ids]

    def replace(self, **changes: Any) -> Example:
        """A copy with these fields changed (the example is frozen)."""
        return dataclasses.replace(self, **changes)

    def to_record(self) -> dict[str, Any]:
        """The example's fields as plain JSON (used in prepared files)."""
        return {
            "id": self.id,
            "dataset": self.dataset,
            "subset": self.subset,
            "split": self.split,
            "question": self.question,
            "context": [{"id": c.id, "text": c.text} for c in self.context],
            "answers": list(self.answers),
            "label": self.label,
            "evidence": list(self.evidence),
            "anchor": list(self.anchor),
            "answer_facts": list(self.answer_facts),
            "flags": list(self.flags),
            "meta": _jsonable(self.meta),
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any], path=None, line: int | None = None) -> Example:
        """The example of a prepared record; a missing field or a wrong type is an InputError."""

        def get(key: str, typ: type[Any], default: Any = None) -> Any:
            value: Any = rec.get(key, default)
            if value is None:
                raise InputError(
                    f"prepared record has no {key!r} field (is this a file written by `tracekd prepare`?)", path, line
                )
            if not isinstance(value, typ) or (typ is list and not all(isinstance(v, str) for v in value)):
                raise InputError(f"prepared record: field {key!r} must be {_TYPE_NAMES[typ]}", path, line)
            return value

        context = rec.get("context")
        if not isinstance(context, list) or not all(
            isinstance(c, dict) and isinstance(c.get("id"), str) and isinstance(c.get("text"), str) for c in context
        ):
            raise InputError("prepared record: field 'context' must be a list of {id, text} strings", path, line)
        ex = cls(
            id=get("id", str),
            dataset=get("dataset", str),
            subset=get("subset", str),
            split=get("split", str, ""),
            question=get("question", str),
            context=tuple(ContextItem(c["id"], c["text"]) for c in context),
            answers=tuple(get("answers", list)),
            label=get("label", str, ""),
            evidence=tuple(get("evidence", list, [])),
            anchor=tuple(get("anchor", list, [])),
            answer_facts=tuple(get("answer_facts", list, [])),
            flags=tuple(get("flags", list, [])),
            meta=dict(get("meta", dict, {})),
        )
        ids = {c.id for c in ex.context}
        for key in ("evidence", "anchor", "answer_facts"):
            unknown = [i for i in getattr(ex, key) if i not in ids]
            if unknown:
                raise InputError(f"prepared record: {key} id {unknown[0]!r} is not a context id", path, line)
        return ex


_TYPE_NAMES: dict[type, str] = {str: "a string", list: "a list of strings", dict: "an object"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def clean_text(text: str) -> str:
    """Collapse runs of whitespace to one space and strip: context items and answers are one line."""
    return " ".join(text.split())


_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")


def unicode_text(s: str) -> str:
    """One spelling of the same text: Unicode NFC (an "a" and a combining accent become "á"),
    zero-width characters (spaces, joiners, the BOM) removed. Every comparison of answers,
    labels and context items starts here."""
    return _ZERO_WIDTH.sub("", unicodedata.normalize("NFC", s))


def normalize_item(s: str) -> str:
    """For comparing context items: Unicode, case and whitespace folded, final period dropped."""
    return " ".join(unicode_text(s).casefold().split()).rstrip(".").strip()


_WORD = re.compile(r"\w+")


@lru_cache(maxsize=65536)
def _words(text: str) -> str:
    return " " + " ".join(_WORD.findall(unicode_text(text).casefold())) + " "


def states_answer(text: str, answers: tuple[str, ...] | list[str]) -> bool:
    """The text contains one of the answers as a whole phrase, comparing words only (case and
    punctuation folded): "Leader of Fianna Fáil" states "Fianna Fáil", "Mary got the milk."
    states "milk", "E.g. means for example and ..." states "E.g. means for example."."""
    words = _words(text)
    return any(_words(a).strip() and _words(a) in words for a in answers)
