"""Greedy decoding with transformers, continuously batched.

Up to `batch_size` sequences decode together over one KV cache. A sequence that reaches EOS (or
its token budget) leaves the batch at once and the next prompt takes its place, so no row waits
for the longest output of a static batch. Each prompt is prefilled alone, exactly as decoding one
prompt at a time does, then joins the batch: the rows are right-aligned in the cache (the columns
left of a row's start are masked out) and each row has its own position ids. The cache keeps
room to grow, so a decoding step writes one column instead of copying the cache. A prompt's first
tokens that equal those of the prompt prefilled before it (the chat template's opening; one question
under each forced trace of `tracekd intervene`) take their keys and values from that prompt's
cache: only the rest is run (`ContinuousDecoder(reuse=False)` runs every token). On the CPU only:
the tests compare both ways there.

Outputs are token for token those of one prompt at a time in the same dtype (tested with and
without the reuse, on prompts shorter and longer than the CPU attention kernel's 512-column
blocks: an empirical property of these kernels, not a guarantee of the method). The weight matrices
multiply all rows at once (bf16 matrix products on the CPU give each row the same bits whatever
the batch); attention, whose sums would be grouped differently over a padded row, runs for each
row on its own columns (`row_attention`), as in one-at-a-time decoding. Tested against
transformers' `generate` on the tiny models; `bench/generate_speed.py` checks it on a trained
SmolLM2 adapter.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from tracekd.generate.backend import Generator, Prompt, forced_budget
from tracekd.models.loading import cuda_available, load_adapted, use_bf16
from tracekd.models.presets import ModelSpec
from tracekd.models.prompts import stop_ids

ROW_ATTENTION = "tracekd_rows"


def row_attention(module, query, key, value, attention_mask, **kwargs):
    """SDPA; in a decoding step of several rows, each row attends alone and unmasked to its own
    columns (the cache is right-aligned: a row's columns are the last ones), so its numbers are
    those of the same prompt decoded on its own."""
    if query.shape[0] == 1 or attention_mask is None or query.shape[2] != 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    starts = (~attention_mask[:, 0, -1, :]).sum(-1).tolist()  # masked columns on the left of each row
    rows = [
        sdpa_attention_forward(
            module, query[b : b + 1], key[b : b + 1, :, s:], value[b : b + 1, :, s:], None, **kwargs
        )[0]
        for b, s in enumerate(starts)
    ]
    return torch.cat(rows), None


AttentionInterface.register(ROW_ATTENTION, row_attention)
AttentionMaskInterface.register(ROW_ATTENTION, sdpa_mask)


class HFGenerator(Generator):
    def __init__(
        self, spec: ModelSpec, adapter: str | Path | None = None, merge: bool = False, precision: str = "auto"
    ):
        super().__init__(spec)
        self.model = load_adapted(spec, adapter, merge, use_bf16(precision)).eval()  # bf16 weights, no autocast
        if cuda_available():
            self.model.to("cuda")
        self.eos_ids = stop_ids(self.tok, self.model.generation_config)

    def generate(
        self, prompts: list[Prompt], max_new_tokens: int, batch_size: int, forced: dict[str, str] | None = None
    ) -> Iterator[list[tuple[str, str]]]:
        """As sequences finish (`batch_size`: sequences in flight)."""
        forced = forced or {}
        encoded = [(pid, self.prompt_ids(msgs), self.forced_ids(forced.get(pid, ""))) for pid, msgs in prompts]
        budgets = [forced_budget(max_new_tokens, len(extra)) for _, _, extra in encoded]
        decoder = ContinuousDecoder(self.model, self.eos_ids, batch_size)
        for done in decoder.run([ids + extra for _, ids, extra in encoded], budgets):
            texts = self.tok.batch_decode([out for _, out in done], skip_special_tokens=True)
            yield [(encoded[i][0], text) for (i, _), text in zip(done, texts)]


class ContinuousDecoder:
    """Greedy decoding of many prompts with at most `batch_size` in flight (see the module docstring)."""

    def __init__(self, model, eos_ids: list[int], batch_size: int, reuse: bool = True):
        self.model, self.batch_size = model, batch_size
        self.device = model.device
        self.reuse = reuse and self.device.type == "cpu"  # other devices' attention kernels are not tested
        self._last_ids: list[int] = []
        self._last_kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.reused = 0  # prompt tokens whose keys and values came from the prompt before
        self.eos = set(eos_ids)
        self.base = model.get_base_model() if hasattr(model, "get_base_model") else model
        # transformers 5.24 calls it `cache` (5.20, the GPU set's, `past_key_values`)
        self.cache_kw = (
            "cache" if "cache" in inspect.signature(type(self.base).forward).parameters else "past_key_values"
        )

    @torch.no_grad()
    def _forward(self, ids, mask, positions, cache):
        # The last position's logits only, picked by index: `logits_to_keep=1` would slice the hidden
        # states to a view whose batch stride is the whole prompt's, for which the CPU matmul copies
        # the vocabulary-sized head weight once per row (about 0.2 s per prompt for SmolLM2).
        last = torch.tensor([ids.shape[1] - 1], device=self.device)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=last,
            **{self.cache_kw: cache},
        )
        return out.logits[:, -1, :]

    def run(self, prompts: list[list[int]], max_new: int | list[int]) -> Iterator[list[tuple[int, list[int]]]]:
        """Yield [(prompt index, generated ids without the stop token)] each time sequences finish
        (`max_new`: the token budget of every prompt, or of each)."""
        if isinstance(max_new, int):
            max_new = [max_new] * len(prompts)
        before = self.base.config._attn_implementation
        self.base.set_attn_implementation(ROW_ATTENTION)
        try:
            yield from self._run(prompts, max_new)
        finally:
            self.base.set_attn_implementation(before)

    def _run(self, prompts: list[list[int]], max_new: list[int]) -> Iterator[list[tuple[int, list[int]]]]:
        waiting = deque(range(len(prompts)))
        rows: list[int] = []  # prompt index of each row of the batch
        outs: list[list[int]] = []  # tokens generated by each row (the last one not yet fed)
        cache, mask, pos = RowCache(), torch.zeros(0, 0, dtype=torch.long, device=self.device), []
        while waiting or rows:
            while waiting and len(rows) < self.batch_size:  # a freed slot takes the next prompt
                i = waiting.popleft()
                alone, logits = self._prefill(prompts[i])
                mask = cache.join(alone, mask)
                rows.append(i)
                outs.append([int(logits.argmax(-1)[0])])
                pos.append(len(prompts[i]))
            done = [r for r in range(len(rows)) if self._finished(outs[r], max_new[rows[r]])]
            if done:
                yield [(rows[r], outs[r][:-1] if outs[r][-1] in self.eos else outs[r]) for r in done]
                keep = [r for r in range(len(rows)) if r not in set(done)]
                mask = cache.keep(keep, mask)
                rows, outs, pos = [rows[r] for r in keep], [outs[r] for r in keep], [pos[r] for r in keep]
                continue  # refill before the next step
            last = torch.tensor([[o[-1]] for o in outs], device=self.device)
            mask = torch.cat([mask, torch.ones(len(rows), 1, dtype=mask.dtype, device=self.device)], dim=1)
            positions = torch.tensor([[p] for p in pos], device=self.device)
            nxt = self._forward(last, mask, positions, cache).argmax(-1).tolist()
            for r, t in enumerate(nxt):
                outs[r].append(t)
                pos[r] += 1

    def _prefill(self, ids: list[int]) -> tuple[RowCache, torch.Tensor]:
        """One prompt's cache and its last position's logits. The tokens it shares at its start with
        the prompt prefilled before it (the chat template's opening; the same question under each
        forced trace of `tracekd intervene`) take their keys and values from that prompt's cache,
        and only the rest is run (`reused` counts the tokens not run again)."""
        k = 0
        if self.reuse:
            last, limit = self._last_ids, min(len(ids) - 1, len(self._last_ids))  # run one token at least
            while k < limit and ids[k] == last[k]:
                k += 1
        alone = RowCache()
        for layer, (keys, values) in enumerate(self._last_kv if k else ()):
            alone.update(keys[..., :k, :], values[..., :k, :], layer)
        rest = torch.tensor([ids[k:]], device=self.device)
        positions = torch.arange(k, len(ids), device=self.device)[None]
        logits = self._forward(rest, torch.ones(1, len(ids), dtype=torch.long, device=self.device), positions, alone)
        if self.reuse:  # views, not copies: a GrowingLayer writes in place only past its length
            self._last_ids = ids
            self._last_kv = [(layer.keys, layer.values) for layer in alone.layers]
        self.reused += k
        return alone, logits

    def _finished(self, out: list[int], max_new: int) -> bool:
        return len(out) >= max_new or out[-1] in self.eos


class GrowingLayer(DynamicLayer):
    """A DynamicLayer whose keys and values live in a buffer with spare columns: appending writes in
    place instead of concatenating (which copies the whole cache at every token)."""

    keys: torch.Tensor
    values: torch.Tensor
    buf_k: Any  # the buffers (tensors with spare columns); None before the first write
    buf_v: Any
    length: int

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.buf_k = self.buf_v = None
            self.length = 0
        n, q = self.length, key_states.shape[-2]
        if self.buf_k is None or n + q > self.buf_k.shape[-2]:
            self._resize(max(2 * (n + q), 64), key_states)
        self.buf_k[..., n : n + q, :] = key_states
        self.buf_v[..., n : n + q, :] = value_states
        self._set(n + q)
        return self.keys, self.values

    def _resize(self, capacity: int, like) -> None:
        shape = (like.shape[0], like.shape[1], capacity, like.shape[-1])
        k = torch.zeros(shape, dtype=like.dtype, device=like.device)
        v = torch.zeros(shape, dtype=like.dtype, device=like.device)
        if self.buf_k is not None:
            k[..., : self.length, :] = self.keys
            v[..., : self.length, :] = self.values
        self.buf_k, self.buf_v = k, v

    def _set(self, length: int) -> None:
        self.length = length
        self.keys, self.values = self.buf_k[..., :length, :], self.buf_v[..., :length, :]

    def set_rows(self, keys, values) -> None:
        """Replace the content (rows of the batch x columns of time), with spare columns."""
        self.buf_k = self.buf_v = None
        self.length = 0
        self._resize(keys.shape[-2] + 64, keys)
        self.buf_k[..., : keys.shape[-2], :] = keys
        self.buf_v[..., : keys.shape[-2], :] = values
        self._set(keys.shape[-2])


class RowCache(DynamicCache):
    """The batch's KV cache: rows join (right-aligned, padded on the left) and leave."""

    layers: list[Any]  # GrowingLayer's (Cache types them as any kind of layer)

    def __init__(self):
        Cache.__init__(self, layer_class_to_replicate=GrowingLayer)

    def length(self) -> int:
        return self.layers[0].length if self.layers and self.layers[0].is_initialized else 0

    def join(self, other: RowCache, mask):
        """Append the rows of `other` (a prefilled prompt); return the new attention mask."""
        t_self, t_other = self.length(), other.length()
        new_mask = torch.ones(other.layers[0].keys.shape[0], t_other, dtype=mask.dtype, device=mask.device)
        if t_self == 0:
            self.layers = other.layers
            return new_mask
        width = max(t_self, t_other)
        for mine, theirs in zip(self.layers, other.layers):
            mine.set_rows(
                torch.cat(
                    [F.pad(mine.keys, (0, 0, width - t_self, 0)), F.pad(theirs.keys, (0, 0, width - t_other, 0))]
                ),
                torch.cat(
                    [F.pad(mine.values, (0, 0, width - t_self, 0)), F.pad(theirs.values, (0, 0, width - t_other, 0))]
                ),
            )
        return torch.cat([F.pad(mask, (width - t_self, 0)), F.pad(new_mask, (width - t_other, 0))])

    def keep(self, rows: list[int], mask):
        """Keep only these rows and drop the columns no remaining row uses; return the new mask."""
        if not rows:
            self.layers = []
            return mask[:0, :0]
        idx = torch.tensor(rows, device=mask.device)
        mask = mask[idx]
        start = int(mask.any(0).nonzero()[0])  # the first column a remaining row uses
        for layer in self.layers:
            layer.set_rows(layer.keys[idx, :, start:], layer.values[idx, :, start:])
        return mask[:, start:]
