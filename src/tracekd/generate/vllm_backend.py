"""vLLM backend (optional, needs a GPU; the install is in docs/training.md). The generator
interface of `generate/backend.py`, as the `hf` backend:

- greedy decoding (temperature 0) of the very token ids training used (`prompt_ids`): vLLM never
  tokenizes the prompt text itself, which would add a second BOS to templates that start with one
  (Llama 3);
- it stops at the same EOS ids as the `hf` backend;
- a LoRA adapter goes through `LoRARequest`, with `max_lora_rank` the smallest of vLLM's allowed
  ranks that holds the adapter's `r`; with `merge` the adapter is merged into the base first
  (peft) and vLLM serves the merged weights without LoRA;
- memory left by a model trained in the same process is released before vLLM measures the card;
- `close()` shuts the engine down (its engine-core process and its share of the card) and
  releases the memory, before the next stage of `tracekd run` trains or starts another engine:
  vLLM starts only when most of the card is free, and garbage collection frees an engine late.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tracekd.errors import InputError
from tracekd.generate.backend import Generator, Prompt, forced_budget
from tracekd.models.loading import (
    adapter_rank,
    check_adapter,
    cuda_available,
    load_adapted,
    model_path,
    release_memory,
    use_bf16,
)
from tracekd.models.presets import ModelSpec
from tracekd.models.prompts import stop_ids

# vllm.config.lora.MaxLoRARanks (vLLM 0.33.0): the only values max_lora_rank accepts
MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def available() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return cuda_available()


def max_lora_rank(r: int, adapter: Path | None = None) -> int:
    """The smallest rank vLLM allows that holds an adapter of rank r."""
    for allowed in MAX_LORA_RANKS:
        if allowed >= r:
            return allowed
    raise InputError(
        f"LoRA rank {r} is above vLLM's largest max_lora_rank ({MAX_LORA_RANKS[-1]}); "
        "generate with --merge or --backend hf",
        adapter,
    )


def _generation_config(path: str):
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(path)
    except OSError:
        return None


class VLLMGenerator(Generator):
    def __init__(
        self, spec: ModelSpec, adapter: str | Path | None = None, merge: bool = False, precision: str = "auto"
    ):
        from vllm import LLM

        super().__init__(spec)
        bf16 = use_bf16(precision)
        path = model_path(spec)
        self.adapter = None
        lora: dict = {}
        merged_dir = None
        if adapter is not None:
            adapter = Path(adapter)
            check_adapter(adapter, spec)
            if merge:
                merged_dir = tempfile.mkdtemp(prefix="tracekd-merged-")
                path = self._write_merged(spec, adapter, bf16, merged_dir)
            else:
                from vllm.lora.request import LoRARequest

                self.adapter = LoRARequest("tracekd", 1, str(adapter))
                lora = {"enable_lora": True, "max_lora_rank": max_lora_rank(adapter_rank(adapter), adapter)}
        self.eos_ids = stop_ids(self.tok, _generation_config(path))
        release_memory()  # vLLM sizes its cache from the free memory on the card
        try:
            self.llm = LLM(model=path, seed=0, dtype="bfloat16" if bf16 else "float32", **lora)
        finally:
            if merged_dir is not None:  # the weights are on the card now
                shutil.rmtree(merged_dir, ignore_errors=True)

    def _write_merged(self, spec: ModelSpec, adapter: Path, bf16: bool, out: str) -> str:
        model = load_adapted(spec, adapter, merge=True, bf16=bf16)
        model.save_pretrained(out)
        self.tok.save_pretrained(out)
        del model
        release_memory()
        return out

    def generate(
        self, prompts: list[Prompt], max_new_tokens: int, batch_size: int, forced: dict[str, str] | None = None
    ) -> Iterator[list[tuple[str, str]]]:
        from vllm import SamplingParams

        forced = forced or {}

        def params(max_tokens: int):
            return SamplingParams(
                temperature=0.0, max_tokens=max_tokens, skip_special_tokens=True, stop_token_ids=self.eos_ids
            )

        plain = params(max_new_tokens)
        chunk = max(batch_size, 256)  # vLLM schedules its own batches; chunks only bound lost work
        for i in range(0, len(prompts), chunk):
            part = prompts[i : i + chunk]
            extra = [self.forced_ids(forced.get(pid, "")) for pid, _ in part]
            inputs = [{"prompt_token_ids": self.prompt_ids(msgs) + ids} for (_, msgs), ids in zip(part, extra)]
            # a forced prompt's own budget: what its forced tokens leave
            each = [params(forced_budget(max_new_tokens, len(ids))) for ids in extra] if forced else plain
            outs = self.llm.generate(inputs, each, lora_request=self.adapter, use_tqdm=False)
            yield [(pid, o.outputs[0].text) for (pid, _), o in zip(part, outs)]

    def close(self) -> None:
        llm = self.__dict__.pop("llm", None)
        if llm is None:
            return
        engine = getattr(llm, "llm_engine", None)
        shutdown = getattr(llm, "shutdown", None) or getattr(engine, "shutdown", None)
        if shutdown is not None:
            shutdown()
        del llm, engine, shutdown
        try:  # vLLM's own teardown of its process groups (what its tests run between engines)
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory
        except ImportError:
            pass
        else:
            cleanup_dist_env_and_memory()
        release_memory()
