"""Model presets, the tiny random models, and the offline SmolLM2 conversion."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tracekd.errors import InputError
from tracekd.models import PRESETS, resolve, tiny
from tracekd.models.loading import config_fingerprint, load_model, load_tokenizer, model_path


def test_presets_and_resolution(tmp_path):
    assert {"smollm2-135m", "llama-3.2-1b-instruct", "qwen3-1.7b", "tiny-random", "tiny-random-qwen3"} <= set(PRESETS)
    assert PRESETS["llama-3.2-1b-instruct"].qlora and PRESETS["qwen3-1.7b"].chat_template_kwargs == {
        "enable_thinking": False,
        "date_string": "26 Jul 2024",
    }
    assert resolve("meta-llama/Llama-3.2-3B-Instruct").source == "meta-llama/Llama-3.2-3B-Instruct"
    assert resolve("Qwen/Qwen3-4B").chat_template_kwargs == {"enable_thinking": False, "date_string": "26 Jul 2024"}
    assert resolve("meta-llama/Llama-3.2-3B-Instruct").chat_template_kwargs == {"date_string": "26 Jul 2024"}
    with pytest.raises(InputError, match="unknown model 'gpt-17'"):
        resolve("gpt-17")
    with pytest.raises(InputError, match=r"no config\.json"):
        resolve(str(tmp_path))


def test_tiny_models_are_small_deterministic_chat_models():
    m1, tok = tiny.build("llama", seed=3)
    m2, _ = tiny.build("llama", seed=3)
    assert 50_000 < sum(p.numel() for p in m1.parameters()) < 300_000
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Where is Mary?"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nWhere is Mary?<|im_end|>\n<|im_start|>assistant\n"
    q, qtok = tiny.build("qwen3")
    assert type(q).__name__ == "Qwen3ForCausalLM"
    text = qtok.apply_chat_template(
        [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_tiny_preset_loads_from_the_cache():
    spec = resolve("tiny-random")
    tok, model = load_tokenizer(spec), load_model(spec)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied
    built, _ = tiny.build("llama")
    assert config_fingerprint(model.config) == config_fingerprint(built.config)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), built.state_dict().values()))
    assert tok.eos_token == "<|im_end|>"


def test_smollm2_is_rebuilt_as_a_plain_model():
    """The GGUF is converted once into a plain model with the same weights and greedy outputs."""
    from transformers import AutoModelForCausalLM

    from tracekd.models import smollm2

    folder = model_path(resolve("smollm2-135m"))
    assert (Path(folder) / "model.safetensors").is_file()
    spec = resolve("smollm2-135m")
    tok, plain = load_tokenizer(spec), load_model(spec)
    assert getattr(plain, "hf_quantizer", None) is None and not hasattr(plain.config, "quantization_config")
    assert plain.lm_head.weight.data_ptr() == plain.model.embed_tokens.weight.data_ptr()
    assert plain.config.num_hidden_layers == 30 and plain.dtype == torch.float32
    gguf = smollm2.gguf_path()
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    enc = tok(
        tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True),
        return_tensors="pt",
        add_special_tokens=False,
    )
    a = plain.generate(**enc, max_new_tokens=12, do_sample=False)
    b = quantized.generate(**enc, max_new_tokens=12, do_sample=False)
    assert torch.equal(a, b)
    assert "Paris" in tok.decode(a[0, enc["input_ids"].shape[1] :])


def test_qlora_settings_for_the_paper_presets(monkeypatch):
    """The paper's presets load in 4-bit NF4 with double quantisation and bf16 compute when CUDA and
    bitsandbytes are there (checked here with the loader's call captured; a CPU cannot load 4-bit)."""
    import transformers

    from tracekd.models import loading

    with pytest.raises(InputError, match="QLoRA needs CUDA and bitsandbytes"):
        load_model(resolve("tiny-random"), qlora=True)
    captured = {}
    monkeypatch.setattr(loading, "qlora_available", lambda: True)
    monkeypatch.setattr(loading, "model_path", lambda spec: spec.source)
    monkeypatch.setattr(
        transformers.AutoModelForCausalLM,
        "from_pretrained",
        classmethod(lambda cls, path, **kw: captured.update(path=path, **kw) or "model"),
    )
    assert load_model(resolve("qwen3-1.7b"), bf16=True) == "model"
    q = captured["quantization_config"]
    assert captured["path"] == "Qwen/Qwen3-1.7B" and captured["dtype"] == torch.bfloat16
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    assert q.bnb_4bit_compute_dtype == torch.bfloat16 and captured["device_map"] == {"": 0}
    captured.clear()
    load_model(resolve("smollm2-135m"), bf16=False)  # not a QLoRA preset
    assert "quantization_config" not in captured and captured["dtype"] == torch.float32
