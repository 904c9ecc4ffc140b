"""`tracekd generate`: decode the prepared test prompts and write JSONL (`id`, `output`) as it goes.

Each finished batch is appended and flushed, so an interrupted run continues where it stopped:
ids already in the output file are skipped (a torn last line is dropped first). One process at a
time writes an output file: it is locked (`.<name>.lock` beside it) while generating.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tracekd.errors import InputError
from tracekd.generate.backend import Generator
from tracekd.generate.options import GenerateOptions
from tracekd.jsonio import check_provenance, dumps_line, naming, refuse_overwriting, sha256_file
from tracekd.lock import folder_lock
from tracekd.models.presets import resolve
from tracekd.traces.records import read_sft_records


def done_ids(out_file: Path, key: Callable[[dict], Any] = lambda rec: rec["id"]) -> set:
    """Ids (`key` of each line) already generated; a partial trailing line (a killed run) is cut off."""
    if not out_file.is_file():
        return set()
    data = out_file.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep != len(data):
        with open(out_file, "r+b") as f:
            f.truncate(keep)
    ids = set()
    for lineno, line in enumerate(data[:keep].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            ids.add(key(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            raise InputError("not a tracekd predictions line", out_file, lineno) from None
    return ids


def make_generator(spec, adapter, opts: GenerateOptions) -> Generator:
    """The backend the options ask for (`auto`: vLLM when installed and a GPU is present, else hf)."""
    from tracekd.generate import vllm_backend

    backend = opts.backend
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
    spec = resolve(model)
    records = read_sft_records(data_dir, "test")
    if opts.limit:
        records = records[: opts.limit]
    if adapter is not None and not Path(adapter).is_dir():
        raise InputError("adapter folder not found", adapter)
    if out_file.is_dir():
        raise InputError("is a folder; name the predictions file", out_file)
    refuse_overwriting([out_file], [data_dir / "test.jsonl", data_dir / "train.jsonl", data_dir / "manifest.json"])
    with folder_lock(out_file.parent, "tracekd generate", lock_name=f".{out_file.name}.lock"):
        produced_by = {
            "model": {"name": spec.name, "source": spec.source},
            "adapter": adapter_hash(adapter),
            "data": sha256_file(data_dir / "test.jsonl"),
            "options": opts.model_dump(exclude={"limit"}),
        }
        fresh = "delete it or name another --out to start fresh"
        has_lines = out_file.is_file() and out_file.stat().st_size > 0
        check_provenance(provenance_file(out_file), produced_by, has_lines, fresh)
        return _generate(records, spec, out_file, adapter, opts, progress)


def provenance_file(out_file: Path) -> Path:
    """What produced a predictions file: `<file>.provenance.json` beside it."""
    return out_file.with_name(out_file.name + ".provenance.json")


def adapter_hash(adapter: str | Path | None) -> str | None:
    """sha256 of an adapter's weight files (None without an adapter)."""
    if adapter is None:
        return None
    files = sorted(p for p in Path(adapter).iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    return ",".join(f"{p.name}:{sha256_file(p)}" for p in files)


def _generate(records, spec, out_file: Path, adapter, opts: GenerateOptions, progress) -> dict[str, Any]:
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
    gen = make_generator(spec, adapter, opts)
    finished = len(records) - len(todo)
    try:
        with naming(out_file), open(out_file, "a", encoding="utf-8") as f:
            for batch in gen.generate(todo, opts.max_new_tokens, opts.batch_size):
                f.write("".join(dumps_line({"id": pid, "output": text}) for pid, text in batch))
                f.flush()
                os.fsync(f.fileno())
                finished += len(batch)
                summary["generated"] += len(batch)
                if progress:
                    progress(finished, len(records))
    finally:
        gen.close()  # before the next stage: the engine shut down, its memory free
    return summary
