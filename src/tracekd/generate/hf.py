"""Batched greedy decoding with transformers: left padding, the KV cache, stop at EOS.

Prompts are sorted by length so a batch holds prompts of similar length (little padding); the
outputs are the same as one prompt at a time (greedy, left padding, attention mask).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tracekd.generate.backend import Generator, Prompt
from tracekd.models.loading import cuda_available, load_adapted
from tracekd.models.presets import ModelSpec
from tracekd.models.prompts import stop_ids


class HFGenerator(Generator):
    def __init__(self, spec: ModelSpec, adapter: str | Path | None = None, merge: bool = False, bf16: bool | None = None):
        super().__init__(spec)
        self.model = load_adapted(spec, adapter, merge, bf16).eval()
        if cuda_available():
            self.model.to("cuda")
        self.eos_ids = stop_ids(self.tok, self.model.generation_config)

    def generate(self, prompts: list[Prompt], max_new_tokens: int, batch_size: int,
                 min_new_tokens: int | None = None) -> Iterator[list[tuple[str, str]]]:
        """Longest prompts first."""
        import torch

        encoded = [(pid, self.prompt_ids(msgs)) for pid, msgs in prompts]
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
