"""Loading a preset's tokenizer and model for training or inference (one path for both), the
base-model record written beside an adapter, and releasing memory between stages."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, get_args

from tracekd.errors import InputError
from tracekd.models.presets import ModelSpec, cache_dir

BASE_FILE = "tracekd_base.json"  # written beside an adapter: which base it was trained on


def model_path(spec: ModelSpec) -> str:
    """A folder or hub id transformers can load."""
    if spec.source == "smollm2-gguf":
        from tracekd.models import smollm2

        return str(smollm2.local_folder())
    if spec.source.startswith("tiny:"):
        from tracekd.models import tiny

        return str(tiny.local_folder(spec.source.split(":", 1)[1], cache_dir()))
    return spec.source


def cuda_available() -> bool:
    """The one CUDA check."""
    import torch

    return torch.cuda.is_available()


Precision = Literal["auto", "fp32", "bf16"]  # the options' `precision`
PRECISIONS: tuple[str, ...] = get_args(Precision)


def cpu_bf16_supported() -> bool:
    """The CPU multiplies bf16 matrices natively (AMX or AVX512-BF16): about four times its fp32
    rate on the development machines. Elsewhere bf16 is emulated and slower than fp32."""
    import torch

    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:  # a torch without these probes
        return False


def bf16_supported(on_cpu: bool = False) -> bool:
    """bf16 is supported and faster than fp32 where the work runs: the CUDA card, else the CPU."""
    import torch

    if cuda_available() and not on_cpu:
        return torch.cuda.is_bf16_supported()
    return cpu_bf16_supported()


def use_bf16(precision: str = "auto", on_cpu: bool = False) -> bool:
    """The one bf16 decision (`precision`): fp32, bf16, or auto (bf16 where supported and faster)."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision == "bf16" or (precision == "auto" and bf16_supported(on_cpu))


def cuda_memory_gib() -> float | None:
    """Total memory of the first CUDA card, None without CUDA."""
    import torch

    if not cuda_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory / 2**30


# the oldest Linux NVIDIA driver each CUDA major version of a torch build runs on (NVIDIA's CUDA
# compatibility table, minor-version compatibility)
CUDA_MIN_DRIVER = {"11": "450.80.02", "12": "525.60.13", "13": "580.65.06"}
CUDA_CHECK = 'python -c "import torch; print(torch.cuda.is_available())"'


def cuda_missing() -> str:
    """Why this torch sees no CUDA device, in words, with how to check it."""
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU build (install the GPU set: requirements-gpu.lock)"
    driver = CUDA_MIN_DRIVER.get(torch.version.cuda.split(".")[0], "recent enough for it")
    return (
        f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no GPU: it needs an NVIDIA GPU with a "
        f"driver >= {driver} (check `nvidia-smi` and `{CUDA_CHECK}`)"
    )


def qlora_missing() -> str | None:
    """Why 4-bit QLoRA cannot run here (None: it can): CUDA, and bitsandbytes that loads."""
    if not cuda_available():
        return cuda_missing()
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return "bitsandbytes is not installed (pip install tracekd[qlora])"
    except Exception as e:  # a bitsandbytes that installs but cannot load its CUDA library
        first = (str(e).splitlines() or [type(e).__name__])[0]
        return f'bitsandbytes does not load ({first}; check `python -c "import bitsandbytes"`)'
    return None


def qlora_available() -> bool:
    return qlora_missing() is None


def require_device(spec: ModelSpec, use_cpu: bool = False) -> None:
    """A preset made for a CUDA GPU (the paper's: `spec.qlora`) never falls back to the CPU in
    silence: without CUDA it stops, unless the CPU is asked for (`--use-cpu`)."""
    if spec.qlora and not use_cpu and not cuda_available():
        raise InputError(
            f"model {spec.name!r} is made for a CUDA GPU, but {cuda_missing()}; "
            "pass --use-cpu (train.use_cpu=true in a config) to train on the CPU anyway"
        )


def use_qlora(spec: ModelSpec, qlora: bool | None, full: bool = False, use_cpu: bool = False) -> bool:
    """QLoRA as asked (it needs CUDA and bitsandbytes). By default where the preset asks for it,
    never with full fine-tuning (QLoRA trains adapters) nor on an asked-for CPU; a preset asking for
    it where it cannot run stops with the reason, unless `--no-qlora` is given."""
    if qlora is None:
        if not spec.qlora or full or use_cpu:
            return False
        if not qlora_available():
            raise InputError(
                f"model {spec.name!r} trains with 4-bit QLoRA, but {qlora_missing()}; pass --no-qlora "
                "(train.qlora=false in a config) to train LoRA on unquantised weights instead"
            )
        return True
    if qlora and full:
        raise InputError("QLoRA trains adapters; it cannot be combined with full fine-tuning")
    if qlora and not qlora_available():
        raise InputError(f"QLoRA needs CUDA and bitsandbytes (pip install tracekd[qlora]): {qlora_missing()}")
    return qlora


def fsdp_launched() -> bool:
    """This process was started by `accelerate launch` with an FSDP config."""
    import os

    from accelerate.utils import str_to_bool

    return bool(str_to_bool(os.environ.get("ACCELERATE_USE_FSDP", "false")))


def load_tokenizer(spec: ModelSpec):
    from transformers import AutoTokenizer

    path = model_path(spec)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except OSError as e:
        raise InputError(f"could not load the tokenizer of {spec.name!r}: {e}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.chat_template is None:
        raise InputError(f"model {spec.name!r} has no chat template; tracekd trains chat models")
    return tok


def load_model(spec: ModelSpec, *, qlora: bool | None = None, bf16: bool = False):
    """The base model: QLoRA (4-bit NF4, double quantisation) as `use_qlora` decides; bf16 weights
    when `bf16` (see `use_bf16`), else float32 (the 4-bit compute dtype follows the same choice)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    dtype = torch.bfloat16 if bf16 else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype}
    if use_qlora(spec, qlora):
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
            # FSDP shards parameters of one dtype: the 4-bit weights are stored in the compute dtype
            **({"bnb_4bit_quant_storage": dtype} if fsdp_launched() else {}),
        )
        if not fsdp_launched():  # FSDP places the shards itself
            from accelerate import PartialState

            kwargs["device_map"] = {"": PartialState().local_process_index}
    path = model_path(spec)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as e:
        raise InputError(f"could not load model {spec.name!r}: {e}") from None
    return model


def load_adapted(spec: ModelSpec, adapter: str | Path | None = None, merge: bool = False, bf16: bool = False):
    """The base model (not quantised) for inference, with a LoRA adapter from `tracekd train`
    applied, merged into the weights when `merge`. The adapter must have been trained on this base.
    With `bf16` every weight is bf16, the adapter's too (peft would keep it fp32 and run its
    products in fp32)."""
    import torch

    model = load_model(spec, qlora=False, bf16=bf16)
    if adapter is None:
        return model
    from peft import PeftModel

    adapter = Path(adapter)
    check_adapter(adapter, spec)
    try:
        model = PeftModel.from_pretrained(model, str(adapter))
    except RuntimeError as e:  # shape mismatch: another base model
        raise InputError(f"adapter does not fit model {spec.name!r}: {str(e).splitlines()[0]}", adapter) from None
    if merge:
        return model.merge_and_unload()
    return model.to(torch.bfloat16) if bf16 else model


def config_fingerprint(config) -> str:
    d = config.to_dict()
    for k in (
        "_name_or_path",
        "architectures",
        "transformers_version",
        "torch_dtype",
        "dtype",
        "quantization_config",
        "use_cache",
    ):
        d.pop(k, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def base_fingerprint(spec: ModelSpec) -> str:
    """The fingerprint of the base model's config as it is stored, read afresh: independent of what
    loading or training does to a model object (SFTTrainer sets `pad_token_id` on the config of
    models that have none, as the hub's Llama and Qwen3 configs do)."""
    from transformers import AutoConfig

    return config_fingerprint(AutoConfig.from_pretrained(model_path(spec)))


def write_base_record(folder: Path, spec: ModelSpec) -> None:
    from tracekd.jsonio import write_json_atomic

    write_json_atomic(folder / BASE_FILE, {"model": spec.name, "config_fingerprint": base_fingerprint(spec)})


def check_adapter(adapter: Path, spec: ModelSpec) -> None:
    """An adapter must have been trained on this base model."""
    if not (adapter / "adapter_config.json").is_file():
        raise InputError("not a LoRA adapter folder (no adapter_config.json)", adapter)
    _check_weights(adapter / "adapter_model.safetensors")
    rec_path = adapter / BASE_FILE
    if not rec_path.is_file():
        return  # an adapter trained elsewhere: peft checks the shapes
    rec = json.loads(rec_path.read_text())
    if rec.get("config_fingerprint") != base_fingerprint(spec):
        raise InputError(f"adapter was trained on base model {rec.get('model')!r}, not on {spec.name!r}", adapter)


def _check_weights(path: Path) -> None:
    """A safetensors file whose header and tensors are all there (a torn copy is refused by name)."""
    if not path.is_file():
        return
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                f.get_slice(key)
    except Exception as e:  # safetensors raises its own SafetensorError (and OSError)
        raise InputError(
            f"damaged weights file ({' '.join(str(e).split())[:160]}); train the adapter again", path
        ) from None


def adapter_rank(adapter: Path) -> int:
    """The LoRA rank `r` of an adapter folder."""
    try:
        return int(json.loads((adapter / "adapter_config.json").read_text())["r"])
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError("adapter_config.json has no LoRA rank `r`", adapter) from None


def release_memory() -> None:
    """Between stages: collect reference cycles (a trainer holds many), hand freed host memory back
    to the OS and cached CUDA blocks back to the driver (vLLM wants most of the card free)."""
    import contextlib
    import ctypes
    import gc

    import torch

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    torch.cuda.empty_cache()  # a no-op where CUDA was never initialised
