"""`tracekd intervene`: force chosen traces into the assistant turn and let the model answer.

For each test item of a prepared folder and each intervention (`traces/interventions.py`), the
forced text's token ids are appended after the chat template's assistant header (nothing else of
the prompt changes) and the model continues with the same greedy, continuously batched decoding
as `tracekd generate` (same backend, precision and batch size). The output (forced text +
continuation) is parsed and scored with the dataset's scorer (`score_output`).

The model's own outputs come from `--predictions` (a `tracekd generate` file of the same model),
or are generated first into OUT/predictions.jsonl. OUT/interventions.jsonl gets one row per item x
intervention (`InterventionRow`), appended batch by batch: an interrupted run resumes where it
stopped. OUT/interventions.json holds the measures (`score/interventions.py`). The folder is
locked while the command runs.

`own` is a consistency check: forcing back the model's own trace must reproduce its own answer.
For each `own` row whose answer changed, with the hf backend, the row records where the two
decodings part (`diverged_at`, in generated tokens) and the logit margin there between the token
the model wrote first and the one it writes now, from one prefill of the common prefix: a margin
near zero is a near-tie flipped by prefill-versus-incremental numerics; a large one is a bug.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracekd.errors import InputError
from tracekd.generate.options import GenerateOptions
from tracekd.generate.run import done_ids, generate, make_generator, model_produced_by
from tracekd.jsonio import (
    check_provenance,
    dumps_line,
    naming,
    read_json,
    refuse_overwriting,
    sha256_file,
    write_json_atomic,
)
from tracekd.layout import (
    INTERVENTION_PROVENANCE,
    INTERVENTION_ROWS,
    INTERVENTION_SUMMARY,
    MANIFEST,
    PREDICTIONS,
    PREPARED,
    TEST,
)
from tracekd.lock import folder_lock
from tracekd.models.loading import load_tokenizer
from tracekd.models.presets import resolve
from tracekd.score.evaluate import freeform_folder, load_test_set, read_predictions, score_output
from tracekd.score.intervention_outputs import read_intervention_rows
from tracekd.score.interventions import measures, same_answer
from tracekd.traces.interventions import REFERENCE, Context, expand, forced_text
from tracekd.traces.parse import parse
from tracekd.traces.records import read_sft_records

DEFAULT = ("own", "gold", "wrong_label", "wrong_evidence", "no_trace")
_SEP = "\t"  # decoding key: "<id>\t<intervention>"


def _labels(data_dir: Path, ds, examples) -> tuple[str, ...]:
    manifest = data_dir / MANIFEST
    space = read_json(manifest).get("label_space") if manifest.is_file() else None
    return tuple(space) if isinstance(space, list) and space else tuple(ds.label_space(examples))


def intervene(
    data_dir: str | Path,
    model: str,
    out_dir: str | Path,
    adapter: str | Path | None = None,
    predictions: str | Path | None = None,
    interventions: list[str] | tuple[str, ...] = DEFAULT,
    opts: GenerateOptions | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run the interventions; return the measures (also written to OUT/interventions.json)."""
    opts = opts or GenerateOptions()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    try:
        names = expand(interventions)
    except ValueError as e:
        raise InputError(str(e), key="interventions") from None
    if opts.served():
        raise InputError(
            "intervene appends forced text to the prompt's token ids: it needs backend hf or vllm, not openai"
        )
    if adapter is not None and not Path(adapter).is_dir():
        raise InputError("adapter folder not found", adapter)
    spec = resolve(model)
    records = read_sft_records(data_dir, "test")
    if opts.limit:
        records = records[: opts.limit]
    examples, ds = load_test_set(data_dir)
    by_id = {ex.id: ex for ex in examples}
    inputs = [*(data_dir / f for f in PREPARED), predictions]
    refuse_overwriting(
        [out_dir / INTERVENTION_ROWS, out_dir / INTERVENTION_SUMMARY, out_dir / INTERVENTION_PROVENANCE], inputs
    )
    if predictions is None:
        predictions = out_dir / PREDICTIONS
        generate(data_dir, model, predictions, adapter, opts)
    own = read_predictions(predictions, by_id)
    missing = [r["id"] for r in records if r["id"] not in own]
    if missing:
        raise InputError(f"{len(missing)} test item(s) have no output (first: {missing[0]!r})", predictions)
    with folder_lock(out_dir, "tracekd intervene"):
        produced_by = {
            **model_produced_by(spec, adapter),
            "data": sha256_file(data_dir / TEST),
            "own_outputs": sha256_file(predictions),
            "options": opts.model_dump(exclude={"limit"}),
        }
        rows = out_dir / INTERVENTION_ROWS
        fresh = f"delete {rows} or name another --out to start fresh"
        check_provenance(
            out_dir / INTERVENTION_PROVENANCE, produced_by, rows.is_file() and rows.stat().st_size > 0, fresh
        )
        return _intervene(data_dir, records, by_id, ds, own, names, spec, adapter, opts, seed, out_dir, progress)


def _contexts(data_dir: Path, records, by_id, ds, own, seed: int, tok) -> dict[str, Context]:
    examples = [by_id[r["id"]] for r in records]
    labels = _labels(data_dir, ds, list(by_id.values()))
    freeform = freeform_folder(data_dir)
    donors: dict[tuple[str, str], list] = {}
    for ex in by_id.values():
        donors.setdefault((ex.dataset, ex.subset), []).append(ex)
    others = tuple(sorted(own.items()))
    return {
        ex.id: Context(
            example=ex,
            output=own[ex.id],
            parsed=parse(own[ex.id], ds.label_sentence),
            template=rec.get("template", "paper"),
            label_sentence=ds.label_sentence,
            labels=labels,
            seed=seed,
            freeform=freeform,
            donors=tuple(donors[(ex.dataset, ex.subset)]),
            others=others,
            tokens=lambda s: tok(s, add_special_tokens=False)["input_ids"],
            text=tok.decode,
        )
        for ex, rec in zip(examples, records, strict=True)
    }


def _intervene(data_dir, records, by_id, ds, own, names, spec, adapter, opts, seed, out_dir, progress):
    out_file = out_dir / INTERVENTION_ROWS
    done = done_ids(out_file, key=lambda r: (r["id"], r["intervention"], r["seed"]))
    seeds = {s for _, _, s in done} - {seed}
    if seeds:
        raise InputError(
            f"rows of seed {sorted(seeds)[0]} are already here; use another --out for seed {seed}", out_file
        )
    done = {(pid, name) for pid, name, _ in done}
    # truncation and filler count the model's tokens
    contexts = _contexts(data_dir, records, by_id, ds, own, seed, load_tokenizer(spec))
    prompts = {r["id"]: r["prompt"] for r in records}
    todo: list[tuple[str, Any]] = []
    forced: dict[str, str] = {}
    # one item's forced traces one after another: the decoder reuses the cache of their shared prompt
    for pid, ctx in contexts.items():
        for name in names:
            if (pid, name) in done:
                continue
            text = forced_text(name, ctx)
            if text is None:
                continue
            key = f"{pid}{_SEP}{name}"
            todo.append((key, prompts[pid]))
            forced[key] = text
    total, finished = len(todo) + len(done), len(done)
    if todo:
        gen = make_generator(spec, adapter, opts)
        try:
            own_rows = {pid: score_output(ds, ctx.example, ctx.output, ctx.freeform) for pid, ctx in contexts.items()}
            with naming(out_file), open(out_file, "a", encoding="utf-8") as f:
                for batch in gen.generate(todo, opts.max_new_tokens, opts.batch_size, forced):
                    rows = []
                    for key, continuation in batch:
                        pid, name = key.split(_SEP)
                        ctx = contexts[pid]
                        row = intervention_row(ds, ctx, name, forced[key], continuation, own_rows[pid], seed)
                        if name == REFERENCE and row["changed"]:
                            row.update(divergence(gen, prompts[pid], ctx.output, forced[key] + continuation))
                        rows.append(row)
                    f.write("".join(dumps_line(r) for r in rows))
                    f.flush()
                    os.fsync(f.fileno())
                    finished += len(batch)
                    if progress:
                        progress(finished, total)
        finally:
            gen.close()  # vLLM: the engine shut down before the next stage
    rows = [r for r in read_intervention_rows(out_file) if r["id"] in contexts and r["intervention"] in names]
    result = measures({seed: rows})
    write_json_atomic(out_dir / INTERVENTION_SUMMARY, result)
    return result


def intervention_row(ds, ctx: Context, name: str, forced: str, continuation: str, own_row, seed: int) -> dict[str, Any]:
    """One output under one intervention, scored, with whether its answer moved from the model's own."""
    output = forced + continuation
    row = score_output(ds, ctx.example, output, ctx.freeform)
    answers = row["parsed"]["answers"]
    return {
        "id": ctx.example.id,
        "subset": ctx.example.subset,
        "seed": seed,
        "intervention": name,
        "forced": forced,
        "output": output,
        "answer": answers,
        "answer_correct": bool(row["answer"]["correct"]),
        "own_answer": own_row["parsed"]["answers"],
        "own_correct": bool(own_row["answer"]["correct"]),
        "changed": not same_answer(answers, own_row["parsed"]["answers"]),
    }


def divergence(gen, messages, first: str, again: str) -> dict[str, Any]:
    """Where two decodings of one prompt part, and the logit margin there (hf backend only):
    logit(first's token) - logit(again's token) after one prefill of the common prefix."""
    model = getattr(gen, "model", None)
    if model is None:
        return {}
    import torch

    a = gen.tok(first, add_special_tokens=False)["input_ids"]
    b = gen.tok(again, add_special_tokens=False)["input_ids"]
    k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    if k == len(a) == len(b):
        return {"diverged_at": None, "margin": None}
    prefix = gen.prompt_ids(messages) + a[:k]
    with torch.no_grad():
        ids = torch.tensor([prefix], device=model.device)
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1].float()
    eos = gen.eos_ids[0]
    ta, tb = (a[k] if k < len(a) else eos), (b[k] if k < len(b) else eos)
    return {"diverged_at": k, "margin": float(logits[ta] - logits[tb])}
