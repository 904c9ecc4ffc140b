"""`tracekd generate`: decode the prepared test prompts and write JSONL (`id`, `output`) as it goes.

Each finished batch is appended and flushed, so an interrupted run continues where it stopped:
ids already in the output file are skipped (a torn last line is dropped first). One process at a
time writes an output file: it is locked (`.<name>.lock` beside it) while generating. What
produced it (model, adapter, data, options; with `--backend openai` the server and the request
parameters) is kept in `<file>.provenance.json`, and a resume by anything else is refused.

`--backend openai` sends each prompt as chat messages to an OpenAI-compatible server (the chat
backend of `generate.chat`: retries, bounded concurrency, the key from an environment variable),
greedy where the server allows; each reply is appended as it arrives.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tracekd.errors import InputError
from tracekd.generate.backend import Generator
from tracekd.generate.chat import Reply, Request, make_backend
from tracekd.generate.options import SERVER_FIELDS, GenerateOptions
from tracekd.jsonio import check_provenance, dumps_line, naming, read_resumable_jsonl, refuse_overwriting, sha256_file
from tracekd.layout import PREPARED, TEST, provenance_of
from tracekd.lock import folder_lock
from tracekd.models.presets import resolve
from tracekd.traces.records import read_sft_records


def done_ids(out_file: Path, key: Callable[[dict], Any] = lambda rec: rec["id"]) -> set:
    """Ids (`key` of each line) already generated; a partial trailing line (a killed run) is cut off."""
    ids = set()
    for lineno, rec in read_resumable_jsonl(out_file):
        try:
            ids.add(key(rec))
        except (KeyError, TypeError):
            raise InputError("not a tracekd predictions line", out_file, lineno) from None
    return ids


def make_generator(spec, adapter, opts: GenerateOptions) -> Generator:
    """The backend the options ask for (`auto`: vLLM when installed and a GPU is present, else hf)."""
    from tracekd.generate import vllm_backend

    backend = opts.backend
    if backend == "openai":
        raise InputError("the openai backend sends chat messages: this stage decodes token ids (backend hf or vllm)")
    if backend == "auto":
        backend = "vllm" if vllm_backend.available() else "hf"
    if backend == "vllm":
        if not vllm_backend.available():
            raise InputError("the vLLM backend needs `pip install tracekd[vllm]` and a GPU")
        return vllm_backend.VLLMGenerator(spec, adapter, opts.merge, opts.precision)
    from tracekd.generate.hf import HFGenerator

    return HFGenerator(spec, adapter, opts.merge, opts.precision)


def generate(
    data_dir: str | Path,
    model: str,
    out_file: str | Path,
    adapter: str | Path | None = None,
    opts: GenerateOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    opts = opts or GenerateOptions()
    data_dir, out_file = Path(data_dir), Path(out_file)
    spec = None if opts.served() else resolve(model)
    records = read_sft_records(data_dir, "test")
    if opts.limit:
        records = records[: opts.limit]
    if adapter is not None and opts.served():
        raise InputError("the openai backend asks a server: it takes no adapter")
    if adapter is not None and not Path(adapter).is_dir():
        raise InputError("adapter folder not found", adapter)
    if out_file.is_dir():
        raise InputError("is a folder; name the predictions file", out_file)
    refuse_overwriting([out_file], [data_dir / f for f in PREPARED])
    with folder_lock(out_file.parent, "tracekd generate", lock_name=f".{out_file.name}.lock"):
        fresh = "delete it or name another --out to start fresh"
        has_lines = out_file.is_file() and out_file.stat().st_size > 0
        check_provenance(provenance_of(out_file), produced_by(model, spec, adapter, data_dir, opts), has_lines, fresh)
        return _generate(records, model, spec, out_file, adapter, opts, progress)


def produced_by(model: str, spec, adapter, data_dir: Path, opts: GenerateOptions) -> dict[str, Any]:
    """The provenance record: a local model's name, source and adapter, or a server's model, URL and
    the request parameters sent; the test data's hash; the options that shape the outputs."""
    if opts.served():
        return {
            "model": {"name": model, "server": opts.endpoint(model).where},
            "request": opts.request_params(),
            "data": sha256_file(data_dir / TEST),
            "options": {"backend": opts.backend},
        }
    return {
        **model_produced_by(spec, adapter),
        "data": sha256_file(data_dir / TEST),
        "options": opts.model_dump(exclude={"limit", "request_seed", *SERVER_FIELDS}),
    }


def weights_hash(folder: str | Path | None) -> str | None:
    """sha256 of the weight files in a model or adapter folder (None without one)."""
    if folder is None:
        return None
    files = sorted(p for p in Path(folder).iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    return ",".join(f"{p.name}:{_file_hash(str(p.resolve()), *_identity(p))}" for p in files)


def _identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=64)
def _file_hash(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, once per (path, size, modification time): a cell's generate and
    intervene stages hash a full fine-tune's weights (gigabytes) once."""
    return sha256_file(path)


def model_produced_by(spec, adapter: str | Path | None) -> dict[str, Any]:
    """The model part of an output's provenance: the preset or path, the adapter's weights and,
    when the model itself is a local folder (a full fine-tune's output, a converted model), the
    hash of its own weights: another model written to the same path is another producer."""
    model: dict[str, Any] = {"name": spec.name, "source": spec.source}
    if Path(spec.source).is_dir():
        model["weights"] = weights_hash(spec.source)
    return {"model": model, "adapter": weights_hash(adapter)}


def _generate(records, model: str, spec, out_file: Path, adapter, opts: GenerateOptions, progress) -> dict[str, Any]:
    done = done_ids(out_file)
    todo = [(r["id"], r["prompt"]) for r in records if r["id"] not in done]
    summary: dict[str, Any] = {
        "total": len(records),
        "already_done": len(done),
        "generated": 0,
        "output": str(out_file),
    }
    if not todo:
        return summary
    finished = len(records) - len(todo)
    for n in (_ask_server if opts.served() else _decode)(todo, model, spec, out_file, adapter, opts):
        finished += n
        summary["generated"] += n
        if progress:
            progress(finished, len(records))
    return summary


def _append(f, lines: list[dict[str, Any]]) -> None:
    f.write("".join(dumps_line(line) for line in lines))
    f.flush()
    os.fsync(f.fileno())


def _decode(todo, model, spec, out_file: Path, adapter, opts: GenerateOptions) -> Iterator[int]:
    """Local decoding: each finished batch appended; yields its size."""
    gen = make_generator(spec, adapter, opts)
    try:
        with naming(out_file), open(out_file, "a", encoding="utf-8") as f:
            for batch in gen.generate(todo, opts.max_new_tokens, opts.batch_size):
                _append(f, [{"id": pid, "output": text} for pid, text in batch])
                yield len(batch)
    finally:
        gen.close()  # before the next stage: the engine shut down, its memory free


def _ask_server(todo, model, spec, out_file: Path, adapter, opts: GenerateOptions) -> Iterator[int]:
    """Chat requests to the server: each reply appended by the thread that received it (none is
    lost however the run stops; reasoning given apart goes in <think> tags before the answer)."""
    backend = make_backend(opts.endpoint(model), out_file.parent)
    params, lock = opts.request_params(), threading.Lock()

    def keep(req: Request, reply: Reply) -> None:
        with lock, naming(out_file), open(out_file, "a", encoding="utf-8") as f:
            _append(f, [{"id": req.key, "output": reply.text}])

    try:
        for _ in backend.complete([Request(pid, msgs, params) for pid, msgs in todo], keep):
            yield 1
    finally:
        backend.close()
