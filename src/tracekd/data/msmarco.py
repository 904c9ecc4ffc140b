"""MS MARCO QnA in the Hugging Face schema (JSON array or JSON Lines, v1.1 or v2.1).

Decomposition:
- Classification: the `query_type` (description / numeric / entity / location / person).
- Information Retrieval: the passages marked `is_selected`, and only those (a passage chosen by
  word overlap need not support the answer: "Yes" overlaps anything). A record without one
  has no gold evidence and is flagged `no_selected_passage`. The selected passages are the
  answer-bearing facts; MS MARCO has no anchor fact (the query itself is the anchor).
- "No Answer Present." (v2.1) or an empty answer list (v1.1) is kept as the answer
  "No Answer Present." and flagged `no_answer_present`.
"""

from __future__ import annotations

from pathlib import Path

from tracekd.data.base import Dataset, DatasetOptions, Retrieval, register, subsets_among
from tracekd.data.reading import check_unique_ids, load_hub, record_id, resolve_source, string_list
from tracekd.data.schema import ContextItem, Example, clean_text
from tracekd.errors import InputError
from tracekd.jsonio import read_json_records

NO_ANSWER = "No Answer Present."
QUERY_TYPES = ("description", "numeric", "entity", "location", "person")
LABEL_LEXICON = {q: (q,) for q in QUERY_TYPES}  # a free-form trace names the query type


class MsMarcoOptions(DatasetOptions):
    """`subsets`: the query types to keep."""

    _query_types = subsets_among(QUERY_TYPES, "MS MARCO query type(s)")


@register
class MsMarco(Dataset):
    name = "msmarco"
    labels = QUERY_TYPES
    Options = MsMarcoOptions
    answers_are_alternatives = True
    answer_scorer = "msmarco"
    label_lexicon = LABEL_LEXICON

    def read(self, source: str | None) -> list[Example]:
        kind, where = resolve_source(source, self.name)
        if kind == "hub":
            dd = load_hub(str(where), "v2.1")
            out = []
            for split, name in (("train", "train"), ("test", "validation")):
                if name in dd:
                    out += [self._example(rec, f"{where}[{name}]", i + 1, split) for i, rec in enumerate(dd[name])]
            return out
        path = Path(where)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl"))
            if not files:
                raise InputError("no .json or .jsonl file in folder", path)
        else:
            files = [path]
        out = [self._example(rec, f, lineno, "") for f in files for lineno, rec in read_json_records(f)]
        check_unique_ids(out, path, "query_id")
        subsets = self.options.subsets
        if subsets:
            out = [ex for ex in out if ex.subset in subsets]
        return out

    def _example(self, rec: dict, file, lineno: int, split: str) -> Example:
        for key in ("query_id", "query", "query_type", "passages", "answers"):
            if key not in rec:
                raise InputError(f"record has no {key!r} field", file, lineno)
        p = rec["passages"]
        if (
            not isinstance(p, dict)
            or not isinstance(p.get("passage_text"), list)
            or not isinstance(p.get("is_selected"), list)
        ):
            raise InputError("'passages' must have lists 'passage_text' and 'is_selected'", file, lineno)
        string_list(p["passage_text"], "passages.passage_text", file, lineno, allow_empty=True)
        if not all(s in (0, 1) and not isinstance(s, float) for s in p["is_selected"]):
            raise InputError("field 'passages.is_selected' must be a list of 0 and 1", file, lineno)
        if len(p["passage_text"]) != len(p["is_selected"]):
            raise InputError("'passages.passage_text' and 'passages.is_selected' differ in length", file, lineno)
        qid = record_id(rec["query_id"], "query_id", file, lineno)
        if not isinstance(rec["query"], str) or not rec["query"].strip():
            raise InputError("field 'query' must be a non-empty string", file, lineno)
        qtype = rec["query_type"].strip().lower() if isinstance(rec["query_type"], str) else None
        if qtype not in QUERY_TYPES:
            raise InputError(
                f"unknown query_type {rec['query_type']!r}; expected one of {', '.join(QUERY_TYPES)}", file, lineno
            )
        answers = tuple(
            clean_text(a) for a in string_list(rec["answers"], "answers", file, lineno, allow_empty=True) if a.strip()
        )
        flags: tuple[str, ...] = ()
        if not answers or NO_ANSWER in answers:
            answers, flags = (NO_ANSWER,), ("no_answer_present",)
        return Example(
            id=f"msmarco/{qid}",
            dataset=self.name,
            subset=qtype,
            split=split,
            question=clean_text(rec["query"]),
            context=tuple(ContextItem(f"p{i}", clean_text(t)) for i, t in enumerate(p["passage_text"]) if t.strip()),
            answers=answers,
            flags=flags,
            meta={"is_selected": tuple(int(s) for s in p["is_selected"]), "query_id": rec["query_id"]},
        )

    def classify(self, ex: Example) -> str:
        return ex.subset

    def retrieve(self, ex: Example) -> Retrieval:
        sel = ex.meta["is_selected"]
        selected = tuple(c.id for c in ex.context if sel[int(c.id[1:])])
        return Retrieval(selected, answer_facts=selected, flags=() if selected else ("no_selected_passage",))
