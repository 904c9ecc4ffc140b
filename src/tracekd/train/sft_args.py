"""The trainer's own arguments: any field of TRL's `SFTConfig` passes through (`train.sft` in a
config, `--sft KEY=VALUE` on the command line), checked against `SFTConfig` itself before anything
runs: the key must be one of its dataclass fields, the value must have the field's type, and
`SFTConfig` built with it must accept it (its own checks: optimizer names, debug options, a GPU
for tf32...).

tracekd keeps its few decisions. A field that one of tracekd's options sets (`learning_rate` is
`lr`) is refused naming that option; so is a field tracekd fixes for its guarantees (the output
folder, resume, checkpoint and log cadence, non-finite losses logged). The other values tracekd
gives the trainer (`TRAINER_DEFAULTS`) are defaults that a passthrough key replaces.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable
from functools import cache
from typing import Any

import yaml

#: SFTConfig fields set from tracekd's own options (`train/sft.py: sft_config`)
OWN_OPTIONS = {
    "num_train_epochs": "epochs",
    "max_steps": "max_steps",
    "learning_rate": "lr",
    "lr_scheduler_type": "scheduler",
    "warmup_steps": "warmup",
    "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "grad_accum",
    "max_length": "max_length",
    "seed": "seed",
    "data_seed": "seed",
    "bf16": "precision",
    "fp16": "precision",
    "use_cpu": "use_cpu",
    "activation_checkpointing": "activation_checkpointing",
    "activation_checkpointing_kwargs": "activation_checkpointing",
    "gradient_checkpointing": "activation_checkpointing",
    "gradient_checkpointing_kwargs": "activation_checkpointing",
    "train_sampling_strategy": "group_by_length",
    "save_steps": "save_steps",
    "logging_steps": "logging_steps",
    "report_to": "report_to",
    "completion_only_loss": "completion_only_loss",
}

#: SFTConfig fields tracekd fixes itself, and why
FIXED = {
    "output_dir": "the checkpoints go to the output folder's checkpoints/ (--out)",
    "resume_from_checkpoint": "--resume continues from the output folder's last complete checkpoint",
    "save_strategy": "a checkpoint every save_steps steps is what --resume continues from",
    "logging_strategy": "the loss is logged every logging_steps steps, a divisor of save_steps "
    "(a resumed run logs the same curve)",
    "logging_nan_inf_filter": "a non-finite loss is logged as it is and stops the run",
    "hub_token": "a secret is not recorded in the run; log in with `hf auth login` or set HF_TOKEN",
}

#: what tracekd gives the trainer that is no option of its own; a passthrough key replaces it
TRAINER_DEFAULTS: dict[str, Any] = {
    "save_total_limit": 2,
    "ddp_find_unused_parameters": False,  # every LoRA (or full) parameter gets a gradient
    "disable_tqdm": True,
    "dataloader_num_workers": 0,
}

#: passthrough keys that change what is logged or kept, not the weights: a resume may change them
#: (as it may tracekd's report_to, logging_steps and save_steps)
NOT_PROVENANCE_PREFIXES = ("logging_", "log_", "hub_", "trackio_")
NOT_PROVENANCE = {
    "run_name",
    "project",
    "disable_tqdm",
    "push_to_hub",
    "save_total_limit",
    "save_only_model",
    "include_num_input_tokens_seen",
    "skip_memory_metrics",
}


def affects_weights(key: str) -> bool:
    return key not in NOT_PROVENANCE and not key.startswith(NOT_PROVENANCE_PREFIXES)


def parse_items(items: Iterable[str]) -> dict[str, Any]:
    """`--sft KEY=VALUE` (repeatable) as a mapping; VALUE is YAML (`0.01`, `adamw_torch`, `[a, b]`)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{item!r} is not KEY=VALUE (e.g. weight_decay=0.01)")
        if key in out:
            raise ValueError(f"{key!r} is given twice")
        try:
            out[key] = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"{item!r}: the value is not valid YAML ({getattr(e, 'problem', e)})") from None
    return out


@cache
def _fields() -> dict[str, Any]:
    """SFTConfig's fields a caller may set, with their types."""
    import dataclasses
    import typing

    from trl import SFTConfig

    hints = typing.get_type_hints(SFTConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(SFTConfig) if f.init}


def check_sft_args(sft: dict[str, Any], use_cpu: bool) -> dict[str, Any]:
    """The passthrough arguments, each value as SFTConfig's field type reads it (JSON values);
    a ValueError naming the first key that is not a field, is tracekd's, or has a bad value."""
    if not sft:
        return {}
    fields = _fields()
    out = {}
    for key, value in sft.items():
        out[key] = _check_one(key, value, fields)
    error = _build_error(out, use_cpu)
    if error is None:
        return out
    for key in out:  # the key SFTConfig refuses alone, else the keys together
        alone = _build_error({key: out[key]}, use_cpu)
        if alone is not None:
            raise ValueError(f"{key}={sft[key]!r}: {alone}")
    raise ValueError(f"SFTConfig refuses {', '.join(out)} together: {error}")


def _check_one(key: Any, value: Any, fields: dict[str, Any]) -> Any:
    from pydantic import ConfigDict, TypeAdapter, ValidationError
    from pydantic_core import to_jsonable_python

    if key not in fields:
        close = difflib.get_close_matches(str(key), fields, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{key!r} is not a field of trl's SFTConfig{hint}")
    if key in OWN_OPTIONS:
        option = OWN_OPTIONS[key]
        raise ValueError(
            f"{key} is set by tracekd's option {option} (train.{option}, --{option.replace('_', '-')}): "
            "set that option, not both"
        )
    if key in FIXED:
        raise ValueError(f"{key} is tracekd's: {FIXED[key]}")
    try:
        value = TypeAdapter(fields[key], config=ConfigDict(arbitrary_types_allowed=True)).validate_python(value)
    except ValidationError as e:
        raise ValueError(f"{key}={value!r}: {e.errors()[0]['msg']}") from None
    return to_jsonable_python(value)


def _build_error(sft: dict[str, Any], use_cpu: bool) -> str | None:
    """What SFTConfig's own checks say of these arguments (None: accepted)."""
    from transformers.utils import logging
    from trl import SFTConfig

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            SFTConfig(output_dir=None, use_cpu=use_cpu, bf16=False, report_to="none", **sft)
    except (ValueError, TypeError, ImportError, KeyError) as e:
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    finally:
        logging.set_verbosity(verbosity)
    return None
