"""Batched greedy decoding with transformers: left padding, the KV cache, stop at EOS.

Prompts are sorted by length so a batch holds prompts of similar length (little padding); the
outputs are the same as one prompt at a time (greedy, left padding, attention mask).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from tracekd.models.prompts import prompt_ids, stop_ids
from tracekd.models.loading import load_adapted, load_tokenizer
from tracekd.models.presets import ModelSpec


class HFGenerator:
    def __init__(self, spec: ModelSpec, adapter: str | Path | None = None, merge: bool = False, bf16: bool | None = None):
        import torch

        self.spec = spec
        self.tok = load_tokenizer(spec)
        self.model = load_adapted(spec, adapter, merge, bf16).eval()
        if torch.cuda.is_available():
            self.model.to("cuda")
        self.eos_ids = stop_ids(self.tok, self.model.generation_config)

    def generate(self, prompts: list[tuple[str, list[dict]]], max_new_tokens: int, batch_size: int,
                 on_batch: Callable[[int], None] | None = None, min_new_tokens: int | None = None) -> Iterator[list[tuple[str, str]]]:
        """Yield [(id, output)] per batch, longest prompts first. (`min_new_tokens` is for throughput
        benchmarks that decode a fixed number of tokens.)"""
        import torch

        encoded = [(pid, prompt_ids(self.tok, msgs, self.spec)) for pid, msgs in prompts]
        encoded.sort(key=lambda x: -len(x[1]))
        pad = self.tok.pad_token_id
        device = self.model.device
        for i in range(0, len(encoded), batch_size):
            batch = encoded[i:i + batch_size]
            width = max(len(ids) for _, ids in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (_, ids) in enumerate(batch):
                input_ids[row, width - len(ids):] = torch.tensor(ids)
                mask[row, width - len(ids):] = 1
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=input_ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                    do_sample=False, num_beams=1, pad_token_id=pad, eos_token_id=self.eos_ids, use_cache=True,
                    min_new_tokens=min_new_tokens,
                )
            texts = self.tok.batch_decode(out[:, width:], skip_special_tokens=True)
            yield [(pid, text) for (pid, _), text in zip(batch, texts)]
            if on_batch:
                on_batch(len(batch))
