"""`tracekd teach`: ask a teacher for a reasoning trace and an answer for every example of a
prepared folder, keep a trace only when its answer scores correct (rejection sampling, up to K
samples), then ask for summaries and post-hoc explanations of the kept traces.

Output folder:

    responses.jsonl     every reply, keyed by request (the cache: resumable, never asked twice)
    teacher.jsonl       one line per example: kept trace, answer, summary, explanation, first sample
    teach_summary.json  acceptance per split and subset, options, the teacher's own scores in short
    teacher_scores.json the teacher's first samples on the test split, scored like a model's outputs
                        (answers, free-form trace steps, 2x2 tables; per example in .examples.jsonl)

The four derived files are rebuilt from the cache in example order, so a resumed run writes the
same bytes as an uninterrupted one, and published together (all or none). The folder is locked
while `teach` works in it (tracekd.lock).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracekd.data import Dataset, Example, get_dataset
from tracekd.errors import InputError
from tracekd.generate.cache import ResponseCache, request_key
from tracekd.generate.chat import Endpoint, Reply, Request, make_backend
from tracekd.jsonio import refuse_overwriting, remove_stale_temps, staged
from tracekd.layout import (
    RESPONSES,
    TEACH_SUMMARY,
    TEACHER_SCORES,
    TEACHER_SCORES_EXAMPLES,
    TEACHER_TRACES,
    TEST,
    TRAIN,
    split_file,
)
from tracekd.lock import folder_lock
from tracekd.score.answers import score_answer
from tracekd.score.evaluate import score_output, summarize
from tracekd.score.outputs import check_rows, check_scores
from tracekd.teach.options import TeacherOptions
from tracekd.traces.parse import parse
from tracekd.traces.records import read_sft_records
from tracekd.traces.teacher import split_reasoning

Progress = Callable[[str, int, int], None]
DERIVED = (TEACHER_TRACES, TEACH_SUMMARY, TEACHER_SCORES, TEACHER_SCORES_EXAMPLES)  # rebuilt from the cache


@dataclass(frozen=True)
class Item:
    """One example to teach: its split, the example, and the messages the teacher sees."""

    split: str
    ex: Example
    messages: list[dict[str, str]]


def load_items(data_dir: Path, opts: TeacherOptions) -> tuple[list[Item], Dataset]:
    items = [
        Item(split, Example.from_record(rec, data_dir / split_file(split)), teacher_messages(rec["prompt"], opts))
        for split in opts.splits
        for rec in read_sft_records(data_dir, split)
    ]
    names = {it.ex.dataset for it in items}
    if len(names) != 1:
        raise InputError(f"the data folder mixes datasets {sorted(names)}", data_dir)
    return items, get_dataset(names.pop())


def teacher_messages(prompt: list[dict[str, str]], opts: TeacherOptions) -> list[dict[str, str]]:
    """The students' prompt as the teacher sees it: one user turn (system message only if asked),
    with the optional instruction appended."""
    msgs = [dict(m) for m in prompt if opts.system or m["role"] != "system"]
    if opts.instruction:
        msgs[-1]["content"] += opts.instruction
    return msgs


def judge(ds: Dataset, ex: Example, reply: dict[str, Any], accept: str) -> dict[str, Any]:
    """Split a reply into trace and answer and score the answer with the dataset's scorer."""
    reasoning, answer_text = split_reasoning(reply["content"], reply["reasoning"])
    answers = parse(answer_text, ds.label_sentence).answers
    score = score_answer(ds, answers, ex, answer_text)
    if accept != "correct" and accept not in score:
        raise InputError(f"accept: {accept!r} is not a score of dataset {ds.name!r} (it has: correct)")
    ok = bool(score["correct"] if accept == "correct" else score[accept]["correct"])
    trace = reasoning if reasoning is not None else answer_text
    output = f"<think>{reasoning}</think>\n{answer_text}" if reasoning is not None else answer_text
    return {
        "trace": trace,
        "separate_reasoning": reasoning is not None,
        "answer_text": answer_text,
        "output": output,
        "answers": None if answers is None else list(answers),
        "correct": ok,
        "tokens": reply.get("completion_tokens"),
    }


class Asker:
    """Sends the requests that are not cached yet, caches each reply as it arrives, counts both."""

    def __init__(self, cache: ResponseCache, workdir: Path, progress: Progress | None):
        self.cache = cache
        self.workdir = workdir
        self.progress = progress
        self.backends: dict[Endpoint, Any] = {}
        self.sent: dict[str, int] = defaultdict(int)
        self.cached: dict[str, int] = defaultdict(int)

    def ask(
        self, kind: str, endpoint: Endpoint, wanted: list[tuple[str, int, list[dict], dict]]
    ) -> dict[tuple[str, int], dict]:
        """wanted: (example id, sample, messages, params). Returns the reply of each (id, sample)."""
        keys = {(eid, k): request_key(eid, kind, endpoint.name, msgs, params, k) for eid, k, msgs, params in wanted}
        todo = [
            Request(keys[(eid, k)], msgs, params) for eid, k, msgs, params in wanted if keys[(eid, k)] not in self.cache
        ]
        meta = {keys[(eid, k)]: (eid, k, params) for eid, k, _, params in wanted}
        self.cached[kind] += len(wanted) - len(todo)
        if todo:
            if endpoint not in self.backends:
                self.backends[endpoint] = make_backend(endpoint, self.workdir)
            done = len(wanted) - len(todo)

            def keep(req: Request, reply: Reply) -> None:  # in the thread that received it: never lost
                eid, k, params = meta[req.key]
                record = {"key": req.key, "id": eid, "kind": kind, "sample": k, "teacher": endpoint.name}
                self.cache.put({**record, "params": params, "reply": reply.as_dict()})

            for _ in self.backends[endpoint].complete(todo, keep):
                self.sent[kind] += 1
                done += 1
                if self.progress:
                    self.progress(kind, done, len(wanted))
        return {(eid, k): self.cache.get(keys[(eid, k)])["reply"] for eid, k, _, _ in wanted}

    def close(self) -> None:
        for backend in self.backends.values():
            backend.close()


def posthoc_messages(item: Item, kept: dict[str, Any], prompt: str) -> list[dict[str, str]]:
    """The paper's second turn: the problem, the teacher's trace and answer as assistant turns
    (the trace only when it came separately), then the request for an explanation."""
    turns = [kept["trace"]] if kept["separate_reasoning"] else []
    return [
        *item.messages,
        *({"role": "assistant", "content": t} for t in [*turns, kept["answer_text"]]),
        {"role": "user", "content": prompt},
    ]


def _ask_all(items: list[Item], ds: Dataset, opts: TeacherOptions, asker: Asker):
    """Rejection-sampled traces, then explanations and summaries of the kept ones."""
    teacher = opts.endpoint()

    kept: dict[str, dict[str, Any]] = {}
    first: dict[str, dict[str, Any]] = {}
    tried: dict[str, int] = {}
    pending = items
    for k in range(opts.samples):
        replies = asker.ask("trace", teacher, [(it.ex.id, k, it.messages, opts.sampling(k)) for it in pending])
        still = []
        for it in pending:
            verdict = judge(ds, it.ex, replies[(it.ex.id, k)], opts.accept)
            tried[it.ex.id] = k + 1
            first.setdefault(it.ex.id, verdict)
            if verdict["correct"]:
                kept[it.ex.id] = {**verdict, "sample": k}
            else:
                still.append(it)
        pending = still
        if not pending:
            break
    accepted = [it for it in items if it.ex.id in kept]

    posthoc: dict[str, str] = {}
    if opts.posthoc and accepted:
        wanted = [
            (
                it.ex.id,
                kept[it.ex.id]["sample"],
                posthoc_messages(it, kept[it.ex.id], opts.posthoc_prompt),
                opts.sampling(kept[it.ex.id]["sample"]),
            )
            for it in accepted
        ]
        for (eid, _), reply in asker.ask("posthoc", teacher, wanted).items():
            posthoc[eid] = split_reasoning(reply["content"], reply["reasoning"])[1]
    summary: dict[str, str] = {}
    if opts.summary and accepted:
        summarizer = opts.summary_endpoint()
        wanted = [
            (
                it.ex.id,
                0,
                [{"role": "user", "content": opts.summary_prompt.format(trace=kept[it.ex.id]["trace"])}],
                opts.summary_sampling(),
            )
            for it in accepted
        ]
        for (eid, _), reply in asker.ask("summary", summarizer, wanted).items():
            summary[eid] = split_reasoning(reply["content"], reply["reasoning"])[1]

    return kept, first, tried, posthoc, summary


def teach(
    data_dir: str | Path, out_dir: str | Path, opts: TeacherOptions, progress: Progress | None = None
) -> dict[str, Any]:
    """Teach every example of `data_dir` into `out_dir` (locked while this runs)."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("output path exists and is not a folder", out_dir)
    refuse_overwriting([out_dir / f for f in (RESPONSES, *DERIVED)], [data_dir / f for f in (TRAIN, TEST)])
    items, ds = load_items(data_dir, opts)
    judge(ds, items[0].ex, {"content": "", "reasoning": None}, opts.accept)  # a bad `accept` fails before any request
    with folder_lock(out_dir, "tracekd teach"):
        remove_stale_temps(out_dir, DERIVED)
        asker = Asker(ResponseCache(out_dir / RESPONSES), out_dir, progress)
        try:
            kept, first, tried, posthoc, summary = _ask_all(items, ds, opts, asker)
        finally:
            asker.close()
        rows = [teacher_row(it, kept.get(it.ex.id), first[it.ex.id], tried[it.ex.id], summary, posthoc) for it in items]
        result = summarize_teaching(rows, opts, data_dir)
        scored, scores = score_teacher(items, rows, ds)
        result["scores"] = {
            "split": scores["split"],
            "n": scores["n"],
            "answer_accuracy": scores["answer"]["accuracy"],
            **{k: v for k, v in scores["steps"].items() if k.endswith("_accuracy")},
        }
        check_rows(scored, out_dir / TEACHER_SCORES_EXAMPLES)
        check_scores(scores, out_dir / TEACHER_SCORES)
        with staged() as stage:  # the derived files together, or none of them
            stage.jsonl(out_dir / TEACHER_TRACES, rows)
            stage.jsonl(out_dir / TEACHER_SCORES_EXAMPLES, scored)
            stage.json(out_dir / TEACHER_SCORES, scores)
            stage.json(out_dir / TEACH_SUMMARY, result)
    return {**result, "requests": {"sent": dict(asker.sent), "cached": dict(asker.cached)}}


def teacher_row(
    it: Item,
    kept: dict[str, Any] | None,
    first: dict[str, Any],
    tried: int,
    summary: dict[str, str],
    posthoc: dict[str, str],
) -> dict[str, Any]:
    eid = it.ex.id
    return {
        "id": eid,
        "split": it.split,
        "subset": it.ex.subset,
        "accepted": kept is not None,
        "tried": tried,
        "sample": None if kept is None else kept["sample"],
        "trace": None if kept is None else kept["trace"],
        "answer_text": None if kept is None else kept["answer_text"],
        "answers": None if kept is None else kept["answers"],
        "tokens": None if kept is None else kept["tokens"],
        "summary": summary.get(eid),
        "posthoc": posthoc.get(eid),
        "first": {k: first[k] for k in ("output", "answers", "correct", "tokens")},
    }


def score_teacher(
    items: list[Item], rows: list[dict[str, Any]], ds: Dataset
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The teacher's own first samples scored like any model's outputs (free-form steps): on the
    test split (on everything when no test split was taught). Per-example rows and their summary."""
    split = "test" if any(it.split == "test" for it in items) else None
    scored = [
        score_output(ds, it.ex, row["first"]["output"], freeform=True)
        for it, row in zip(items, rows)
        if split is None or it.split == split
    ]
    return scored, {**summarize(scored, ds), "split": split or "all", "trace_style": "freeform"}


def _rate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n, acc = len(rows), sum(r["accepted"] for r in rows)
    samples = sum(r["tried"] for r in rows)
    return {
        "examples": n,
        "accepted": acc,
        "rate": acc / n if n else 0.0,
        "samples": samples,
        "per_sample_rate": acc / samples if samples else 0.0,
        "first_sample_accuracy": sum(r["first"]["correct"] for r in rows) / n if n else 0.0,
    }


def summarize_teaching(rows: list[dict[str, Any]], opts: TeacherOptions, data_dir: Path) -> dict[str, Any]:
    by_split: dict[str, list] = defaultdict(list)
    by_subset: dict[str, list] = defaultdict(list)
    for r in rows:
        by_split[r["split"]].append(r)
        by_subset[r["subset"]].append(r)
    tokens = [r["tokens"] for r in rows if r["accepted"] and r["tokens"] is not None]
    return {
        "teacher": opts.endpoint().name,
        "data": str(data_dir),
        "options": opts.model_dump(),
        "acceptance": {
            "overall": _rate(rows),
            "by_split": {k: _rate(v) for k, v in sorted(by_split.items())},
            "by_subset": {k: _rate(v) for k, v in sorted(by_subset.items())},
        },
        "summaries": sum(r["summary"] is not None for r in rows),
        "explanations": sum(r["posthoc"] is not None for r in rows),
        "mean_completion_tokens": sum(tokens) / len(tokens) if tokens else None,
    }
