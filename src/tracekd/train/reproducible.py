"""Reproducible training: exact resume, and the same bytes from the same run.

Exact resume: the order of the training examples is a pure function of (seed, epoch).

The Trainer's own samplers draw each epoch's order from the global torch RNG when the epoch's
iterator starts (`RandomSampler` without a generator; `LengthGroupedSampler` without one). In an
uninterrupted run that RNG has been advanced by every earlier step (dropout); a run resumed in
epoch 2 or later restores the RNG only after its first batches are drawn (transformers'
`_run_epoch`: `skip_first_batches`, then `_load_rng_state`), so it draws a different order and
the weights diverge from the first resumed step. `EpochSampler` uses its own generator seeded
from (seed, epoch) alone: the Trainer's `set_epoch(epoch)` (which reaches the sampler through
accelerate's `DataLoaderShard` and `SkipBatchSampler`) is all it needs, so a resumed epoch sees
the same order as the uninterrupted one, with or without length grouping.

One writer: `locked_output` holds the output folder's lock (tracekd.lock) and removes the
temporary files a killed run left there.

Same bytes: peft keeps `target_modules` (and other module lists) as sets and writes them to
adapter_config.json in hash order, which changes from process to process; they are sorted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler
from trl import SFTTrainer

from tracekd.jsonio import remove_stale_temps
from tracekd.layout import ADAPTER, FULL_MODEL, TRAIN_SUMMARY
from tracekd.lock import folder_lock
from tracekd.models.loading import BASE_FILE


@contextmanager
def locked_output(out_dir: Path) -> Iterator[None]:
    with folder_lock(out_dir, "tracekd train", job_ranks=True):
        remove_stale_temps(out_dir, [TRAIN_SUMMARY])
        for final in (ADAPTER, FULL_MODEL):
            remove_stale_temps(out_dir / final, [BASE_FILE])
        yield


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A torch generator that depends on (seed, epoch) only."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


class EpochSampler(Sampler[int]):
    """A shuffled order per epoch (length-grouped when `lengths` is given), the same in every
    process and every resumed run."""

    def __init__(self, n: int, seed: int, lengths: list[int] | None = None, group_size: int = 1):
        self.n, self.seed, self.lengths, self.group_size = n, seed, lengths, group_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def order(self, epoch: int) -> list[int]:
        g = epoch_generator(self.seed, epoch)
        if self.lengths is not None:
            return length_batches(self.lengths, self.group_size, g)
        return torch.randperm(self.n, generator=g).tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.order(self.epoch))


def length_batches(lengths: list[int], batch: int, g: torch.Generator) -> list[int]:
    """An order whose consecutive `batch`-sized groups hold examples of nearly the same length, the
    groups in random order: the examples shuffled, sorted by length (ties stay shuffled), cut into
    batches from a random offset, and the full batches shuffled (the shortest and longest leftovers
    last, so every full batch keeps its place).
    Little padding as in a length sort, without its order: transformers' grouping sorts each
    megabatch of 50 batches, so a small set is sorted whole and its batches run from the longest to
    the shortest, one task of bAbI after another."""
    shuffled = torch.randperm(len(lengths), generator=g).tolist()
    ranked = sorted(shuffled, key=lambda i: lengths[i])
    start = int(torch.randint(batch, (1,), generator=g))  # where the cuts fall changes with the epoch
    cuts = [0, *range(start, len(ranked), batch), len(ranked)]
    batches = [ranked[a:b] for a, b in pairwise(cuts) if b > a]
    full = [b for b in batches if len(b) == batch]
    short = [i for b in batches if len(b) < batch for i in b]
    return [i for j in torch.randperm(len(full), generator=g).tolist() for i in full[j]] + short


def _selective_head(model):
    """(backbone, LM head) of a causal LM (under PEFT or not) whose logits are the head's output
    unchanged (no temperature, scale or soft-capping); None otherwise."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config.get_text_config()
    scaled = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")
    if any(getattr(config, k, None) not in (None, 1.0) for k in scaled):
        return None
    backbone, lm_head = getattr(base, "base_model", None), base.get_output_embeddings()
    return None if backbone is None or backbone is base or lm_head is None else (backbone, lm_head)


def sort_peft_sets(model) -> None:
    """Turn the set-valued fields of the model's peft configs into sorted lists."""
    for cfg in getattr(model, "peft_config", {}).values():
        for name, value in vars(cfg).items():
            if isinstance(value, set):
                setattr(cfg, name, sorted(value))


class ReproducibleTrainer(SFTTrainer):
    """SFTTrainer whose training order is `EpochSampler`'s (random or grouped by length, as
    `train_sampling_strategy` says; any other strategy is the Trainer's own) and whose adapter
    config lists its modules in sorted order."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        sort_peft_sets(self.model)

    def _send_telemetry(self) -> None:
        """tracekd makes no network call unless a hub id is asked for: no usage ping."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """On a CPU (one process), the loss of the label positions only. TRL's fused LM head scores
        only the positions with a label on Triton devices, but every position elsewhere, so a CPU
        spent about a third of each step on prompt positions whose loss is masked away. Here the
        backbone runs as TRL runs it, the LM head projects only the positions whose next-token
        label is not -100, and the loss is TRL's: minus the sum of their log-probabilities over
        `num_items_in_batch`; entropy and token accuracy are logged as TRL logs them. Elsewhere
        (CUDA, several processes, a model that scales its logits, asked for outputs): TRL's own."""
        single_cpu = not return_outputs and self.args.world_size == 1 and self.args.device.type == "cpu"
        head = _selective_head(model) if single_cpu else None  # a wrapped (DDP) model is never read here
        if head is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        backbone, lm_head = head
        labels = inputs["labels"][:, 1:]
        mask = labels != -100
        kwargs = {k: v for k, v in inputs.items() if k != "labels"}
        with self.accelerator.autocast():  # what the prepared model's forward would have entered
            hidden = backbone(**kwargs, use_cache=False).last_hidden_state[:, :-1][mask]
            logits = lm_head(hidden)
        log_probs = logits.float().log_softmax(-1)
        targets = labels[mask]
        picked = log_probs.gather(-1, targets[:, None]).squeeze(-1)
        loss = -picked.sum() / (mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch)
        with torch.no_grad():
            n = max(int(mask.sum()), 1)
            mode = "train" if model.training else "eval"
            self._metrics[mode]["entropy"].append(float(-(log_probs.exp() * log_probs).sum() / n))
            self._metrics[mode]["mean_token_accuracy"].append(float((log_probs.argmax(-1) == targets).sum() / n))
            if mode == "train":  # tokens seen, padding excluded (one process: nothing to gather)
                self._total_train_tokens += int(inputs["attention_mask"].sum())
                self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return loss

    def _get_train_sampler(self, train_dataset=None):
        ds: Any = self.train_dataset if train_dataset is None else train_dataset  # a datasets.Dataset
        strategy = self.args.train_sampling_strategy
        if ds is None or strategy not in ("random", "group_by_length"):
            return super()._get_train_sampler(train_dataset)
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        if strategy == "random":
            return EpochSampler(len(ds), seed)
        lengths = [len(x) for x in ds["input_ids"]]
        return EpochSampler(len(ds), seed, lengths, self._train_batch_size)  # the loader's batch, padded alone
