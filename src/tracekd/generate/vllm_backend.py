"""vLLM backend (optional: `pip install tracekd[vllm]`, needs a GPU). Same interface as HFGenerator:
greedy decoding (temperature 0), the prompt rendered by the same chat template, LoRA via
LoRARequest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from tracekd.generate.prompts import prompt_text
from tracekd.models.loading import check_adapter, load_tokenizer, model_path
from tracekd.models.presets import ModelSpec


def available() -> bool:
    try:
        import torch
        import vllm  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


class VLLMGenerator:
    def __init__(self, spec: ModelSpec, adapter: str | Path | None = None, merge: bool = False, bf16: bool | None = None):
        from transformers import AutoConfig
        from vllm import LLM

        self.spec = spec
        self.tok = load_tokenizer(spec)
        path = model_path(spec)
        self.adapter = None
        if adapter is not None:
            check_adapter(Path(adapter), spec, AutoConfig.from_pretrained(path))
            from vllm.lora.request import LoRARequest

            self.adapter = LoRARequest("tracekd", 1, str(adapter))
        self.llm = LLM(model=path, enable_lora=adapter is not None, max_lora_rank=64, seed=0,
                       dtype="bfloat16" if bf16 is not False else "float32")

    def generate(self, prompts: list[tuple[str, list[dict]]], max_new_tokens: int, batch_size: int,
                 on_batch: Callable[[int], None] | None = None) -> Iterator[list[tuple[str, str]]]:
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, skip_special_tokens=True)
        chunk = max(batch_size, 256)  # vLLM schedules its own batches; chunks only bound lost work
        for i in range(0, len(prompts), chunk):
            part = prompts[i:i + chunk]
            texts = [prompt_text(self.tok, msgs, self.spec) for _, msgs in part]
            outs = self.llm.generate(texts, params, lora_request=self.adapter, use_tqdm=False)
            yield [(pid, o.outputs[0].text) for (pid, _), o in zip(part, outs)]
            if on_batch:
                on_batch(len(part))
