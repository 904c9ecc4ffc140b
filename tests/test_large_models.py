"""Models at the paper's scale, checked without a GPU: a model saved like a hub model trains and
its adapter is accepted at generation; prompts do not depend on the date; vLLM (a recording
stand-in) gets the training token ids, a fitting max_lora_rank and the merged weights; the final
save runs on every process; `--full` on a QLoRA preset; the 4-bit compute dtype; activation
checkpointing; memory released after training; a normal interpreter exit after a distributed run."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import types
import weakref
from datetime import datetime
from pathlib import Path

import pytest
import torch

from tracekd.data.config import DatasetConfig
from tracekd.errors import InputError
from tracekd.models import PRESETS, loading, resolve
from tracekd.models.loading import BASE_FILE, load_tokenizer, model_path
from tracekd.models.prompts import prompt_ids
from tracekd.prepare import prepare
from tracekd.traces.records import read_sft_records
from tracekd.train.options import TrainOptions
from tracekd.train.sft import train

HUB = "tiny-random-llama3"
VLLM_MAX_LORA_RANKS = {1, 8, 16, 32, 64, 128, 256, 320, 512}  # vllm/config/lora.py, MaxLoRARanks (0.33.0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("paper") / "data"
    prepare(DatasetConfig(name="synthetic-babi", size=30, limit_train=8, limit_test=4), "correct", "tagged", 0, d)
    return d


def _steps(**kw) -> TrainOptions:
    return TrainOptions(**{"max_steps": 1, "batch_size": 2, "grad_accum": 1, "save_steps": 1000, "warmup": 0, **kw})


def test_the_hub_like_model_is_saved_like_the_hub_llama():
    """What makes the defects visible: no pad token anywhere, BOS from the tokenizer and the template."""
    folder = Path(model_path(resolve(HUB)))
    assert json.loads((folder / "config.json").read_text()).get("pad_token_id") is None
    from transformers import AutoTokenizer

    raw = AutoTokenizer.from_pretrained(folder)
    assert (
        raw.pad_token is None
        and "strftime_now" in raw.chat_template
        and raw.chat_template.startswith("{{- bos_token }}")
    )
    text = raw.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True)
    assert raw(text)["input_ids"][:2] == [raw.bos_token_id] * 2  # text tokenized with special tokens: two BOS


def test_adapter_of_a_hub_like_model_is_accepted_at_generation(tmp_path):
    """Trained 2 steps through `tracekd run`, then generated with the adapter (SFTTrainer sets
    pad_token_id on the model's config during training; the base record must not see it)."""
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(f"""
name: hub
datasets: [{{name: synthetic-babi, size: 30, limit_train: 8, limit_test: 3}}]
models: [{HUB}]
conditions: [correct]
template: tagged
train: {{max_steps: 2, batch_size: 2, grad_accum: 1, save_steps: 1000}}
generate: {{max_new_tokens: 6, batch_size: 4}}
""")
    r = subprocess.run(
        [sys.executable, "-m", "tracekd", "run", str(cfg), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    cell = tmp_path / "run" / "cells" / "synthetic-babi" / HUB / "correct" / "seed-0"
    preds = [json.loads(x) for x in (cell / "predictions.jsonl").open()]
    assert len(preds) == 3 and (cell / "cell.json").is_file()
    summary = json.loads((cell / "train" / "train_summary.json").read_text())
    assert summary["steps"] == 2 and summary["chat_template_kwargs"]["date_string"] == "26 Jul 2024"
    record = json.loads((cell / "train" / "adapter" / BASE_FILE).read_text())
    assert record["config_fingerprint"] == loading.base_fingerprint(resolve(HUB))


def test_the_prompt_does_not_depend_on_the_date(monkeypatch):
    from transformers.utils import chat_template_utils

    spec = resolve(HUB)
    tok = load_tokenizer(spec)
    msgs = [{"role": "user", "content": "Where is Mary?"}]

    def on(day: datetime):
        class Clock(datetime):
            @classmethod
            def now(cls, tz=None):
                return day

        monkeypatch.setattr(chat_template_utils, "datetime", Clock)
        raw = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)  # the template's own date
        return raw, prompt_ids(tok, msgs, spec)

    raw1, ids1 = on(datetime(2025, 3, 1))
    raw2, ids2 = on(datetime(2026, 11, 27))
    assert "Today Date: 01 Mar 2025" in raw1 and raw1 != raw2  # the clock is patched
    assert ids1 == ids2 and "Today Date: 26 Jul 2024" in tok.decode(ids1)
    assert ids1[0] == tok.bos_token_id and ids1[1] != tok.bos_token_id  # one BOS


# --- vLLM, through a recording stand-in for the `vllm` module ---


class _Recorder:
    def __init__(self):
        self.llm: dict = {}
        self.prompts: list = []
        self.params: list = []
        self.lora_requests: list = []
        self.emptied = 0

    def module(self, merged_probe=None) -> types.ModuleType:
        rec = self

        class LLM:
            def __init__(self, model, **kw):
                rec.llm = {"model": model, **kw, "emptied_before": rec.emptied}
                if merged_probe:
                    rec.llm["probe"] = merged_probe(model)

            def generate(self, prompts, params, lora_request=None, use_tqdm=True):
                rec.prompts += prompts
                rec.params.append(params)
                rec.lora_requests.append(lora_request)
                return [
                    types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f"out-{len(p['prompt_token_ids'])}")])
                    for p in prompts
                ]

        class SamplingParams:
            def __init__(self, **kw):
                self.kw = kw

        class LoRARequest:
            def __init__(self, name, int_id, path):
                self.name, self.int_id, self.path = name, int_id, path

        vllm = types.ModuleType("vllm")
        vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
        lora = types.ModuleType("vllm.lora")
        request = types.ModuleType("vllm.lora.request")
        request.LoRARequest = LoRARequest
        vllm.lora, lora.request = lora, request
        return vllm


def _install(monkeypatch, rec: _Recorder, merged_probe=None):
    vllm = rec.module(merged_probe)
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", vllm.lora)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", vllm.lora.request)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: setattr(rec, "emptied", rec.emptied + 1))


def _adapter(folder: Path, spec_name: str, r: int) -> Path:
    """A LoRA adapter of rank r on a tiny preset, saved by peft (untrained: B is set to non-zero
    values so merging changes the weights)."""
    from peft import LoraConfig, get_peft_model

    spec = resolve(spec_name)
    torch.manual_seed(0)
    model = get_peft_model(
        loading.load_model(spec), LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear", task_type="CAUSAL_LM")
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    model.save_pretrained(folder)
    return folder


def _prompts(data):
    return [(r["id"], r["prompt"]) for r in read_sft_records(data, "test")]


def test_vllm_gets_the_training_token_ids_and_a_fitting_lora_rank(data, tmp_path, monkeypatch):
    from tracekd.generate.hf import HFGenerator
    from tracekd.generate.vllm_backend import VLLMGenerator

    rec = _Recorder()
    _install(monkeypatch, rec)
    spec = resolve(HUB)
    adapter = _adapter(tmp_path / "r100", HUB, r=100)
    gen = VLLMGenerator(spec, adapter)
    prompts = _prompts(data)
    out = dict(x for batch in gen.generate(prompts, 8, 2) for x in batch)
    tok = load_tokenizer(spec)
    expected = [prompt_ids(tok, msgs, spec) for _, msgs in prompts]
    assert rec.prompts == [{"prompt_token_ids": ids} for ids in expected]
    assert all(p["prompt_token_ids"][0] == tok.bos_token_id != p["prompt_token_ids"][1] for p in rec.prompts)
    assert out == {pid: f"out-{len(ids)}" for (pid, _), ids in zip(prompts, expected)}
    assert rec.llm["enable_lora"] is True and rec.llm["max_lora_rank"] == 128
    assert rec.llm["max_lora_rank"] >= 100 and rec.llm["max_lora_rank"] in VLLM_MAX_LORA_RANKS
    assert rec.llm["model"] == model_path(spec) and rec.lora_requests[0].path == str(adapter)
    assert rec.llm["emptied_before"] >= 1  # CUDA memory released before vLLM starts
    params = rec.params[0].kw
    assert params["temperature"] == 0.0 and params["max_tokens"] == 8
    assert (
        params["stop_token_ids"]
        == HFGenerator(spec).eos_ids
        == sorted({tok.eos_token_id, tok.convert_tokens_to_ids("<|end_of_text|>")})
    )


@pytest.mark.parametrize("r,allowed", [(1, 1), (2, 8), (16, 16), (17, 32), (300, 320), (512, 512)])
def test_max_lora_rank_is_vllms_smallest_that_fits(r, allowed):
    from tracekd.generate.vllm_backend import max_lora_rank

    assert max_lora_rank(r) == allowed and allowed in VLLM_MAX_LORA_RANKS
    with pytest.raises(InputError, match="above vLLM's largest max_lora_rank"):
        max_lora_rank(513)


def test_vllm_merge_serves_the_merged_weights(data, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from tracekd.generate.vllm_backend import VLLMGenerator

    spec = resolve("tiny-random")
    adapter = _adapter(tmp_path / "r8", "tiny-random", r=8)
    from peft import PeftModel

    expected = PeftModel.from_pretrained(loading.load_model(spec), str(adapter)).merge_and_unload().state_dict()
    rec = _Recorder()

    def probe(folder):  # what vLLM would load from the folder it is given
        return load_file(str(Path(folder) / "model.safetensors"))

    _install(monkeypatch, rec, merged_probe=probe)
    gen = VLLMGenerator(spec, adapter, merge=True, precision="fp32")
    list(gen.generate(_prompts(data), 4, 2))
    assert rec.llm["model"] != model_path(spec) and "enable_lora" not in rec.llm and rec.lora_requests == [None]
    weights = rec.llm["probe"]
    name = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(weights[name], expected[name])
    assert not torch.equal(weights[name], loading.load_model(spec).state_dict()[name])  # the adapter changed it
    assert not Path(rec.llm["model"]).exists()  # the temporary folder is removed once vLLM holds the weights


def test_vllm_argument_objects_are_valid_for_the_real_package(data, tmp_path, monkeypatch):
    """Builds vLLM's own EngineArgs, LoRAConfig, SamplingParams and LoRARequest from what tracekd
    passes. Runs where vllm imports (a GPU install); `pip install vllm` cannot resolve beside the
    CPU pins (vllm 0.33 pins torch 2.14.0), so it is skipped on the CPU machines."""
    vllm = pytest.importorskip("vllm")
    from vllm.config.lora import LoRAConfig
    from vllm.engine.arg_utils import EngineArgs

    from tracekd.generate import vllm_backend

    captured = {}

    class LLM:
        def __init__(self, model, **kw):
            captured.update(model=model, **kw)

        def generate(self, prompts, params, lora_request=None, use_tqdm=True):
            captured.update(prompts=prompts, params=params, lora_request=lora_request)
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text="")]) for _ in prompts]

    monkeypatch.setitem(vllm.__dict__, "LLM", LLM)  # not setattr: reading vllm.LLM imports the whole engine
    gen = vllm_backend.VLLMGenerator(resolve(HUB), _adapter(tmp_path / "r40", HUB, r=40))
    list(gen.generate(_prompts(data), 4, 2))
    kw = {k: v for k, v in captured.items() if k not in ("prompts", "params", "lora_request")}
    args = EngineArgs(**kw)
    assert args.enable_lora and args.max_lora_rank == 64
    assert LoRAConfig(max_lora_rank=args.max_lora_rank).max_lora_rank == 64
    assert captured["params"].temperature == 0.0 and captured["lora_request"].lora_path.endswith("r40")


# --- training on several processes, presets, memory ---


def test_save_model_runs_on_every_process(data, tmp_path, monkeypatch):
    """Under FSDP / ZeRO-3 save_model gathers across ranks: a rank that skipped it would hang the others."""
    from transformers import Trainer

    saved = []
    original = Trainer.save_model
    monkeypatch.setattr(Trainer, "is_world_process_zero", lambda self: False)
    monkeypatch.setattr(
        Trainer, "save_model", lambda self, out=None, *a, **k: saved.append(out) or original(self, out, *a, **k)
    )
    summary = train(data, "tiny-random", tmp_path / "o", _steps())
    assert saved[-1] == str(tmp_path / "o" / "adapter")  # (checkpoints are saved through it too)
    # tracekd's own files are the main process's
    assert summary == {} and not (tmp_path / "o" / "train_summary.json").exists()
    assert not (tmp_path / "o" / "adapter" / BASE_FILE).exists()


def test_full_finetuning_on_a_qlora_preset_needs_no_flag(data, tmp_path, monkeypatch):
    """A paper preset asks for QLoRA; with `--full` it trains the unquantised model instead of refusing."""
    from tracekd.train import sft

    paper_like = dataclasses.replace(PRESETS["tiny-random"], qlora=True)
    monkeypatch.setattr(sft, "resolve", lambda name: paper_like)
    monkeypatch.setattr(loading, "qlora_available", lambda: True)  # as on a CUDA machine with bitsandbytes
    s = train(data, "tiny-random", tmp_path / "full", _steps(full=True, use_cpu=True))  # (the CPU explicitly)
    assert s["full_finetune"] and not s["qlora"] and (tmp_path / "full" / "model" / "config.json").is_file()
    monkeypatch.setattr(loading, "cuda_available", lambda: True)
    monkeypatch.setattr(sft, "cuda_memory_gib", lambda: 80.0)
    assert sft.device_policy(paper_like, TrainOptions()).qlora  # LoRA on the same preset stays QLoRA
    with pytest.raises(InputError, match="cannot be combined with full fine-tuning"):
        sft.device_policy(paper_like, TrainOptions(full=True, qlora=True))


def test_4bit_compute_dtype_follows_the_bf16_choice(monkeypatch):
    import transformers

    captured = {}
    monkeypatch.setattr(loading, "qlora_available", lambda: True)
    monkeypatch.setattr(loading, "model_path", lambda spec: spec.source)
    monkeypatch.setattr(
        transformers.AutoModelForCausalLM,
        "from_pretrained",
        classmethod(lambda cls, path, **kw: captured.update(kw) or "model"),
    )
    for bf16, dtype in ((False, torch.float32), (True, torch.bfloat16)):
        loading.load_model(resolve("llama-3.2-1b-instruct"), bf16=bf16)
        assert captured["dtype"] == dtype and captured["quantization_config"].bnb_4bit_compute_dtype == dtype


@pytest.mark.parametrize(
    "preset,gib,option,expected",
    [
        ("qwen3-1.7b", 24.0, None, True),
        ("llama-3.2-1b-instruct", 39.5, None, True),
        ("qwen3-1.7b", 80.0, None, False),
        ("qwen3-1.7b", None, None, False),
        ("smollm2-135m", 24.0, None, False),
        ("smollm2-135m", None, True, True),
        ("qwen3-1.7b", 24.0, False, False),
    ],
)
def test_activation_checkpointing_default(monkeypatch, preset, gib, option, expected):
    from tracekd.train import sft

    monkeypatch.setattr(sft, "cuda_memory_gib", lambda: gib)
    assert sft.use_activation_checkpointing(PRESETS[preset], TrainOptions(activation_checkpointing=option)) is expected


def test_training_with_activation_checkpointing_and_memory_released_after(data, tmp_path, monkeypatch):
    from transformers import TrainerCallback

    seen = {}

    class Watch(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            # transformers 5.24 (CPU set) / 5.20 (GPU set)
            seen["checkpointing"] = (
                getattr(model, "is_activation_checkpointing", None) or model.is_gradient_checkpointing
            )
            seen["model"] = weakref.ref(model)

    def empty_cache():  # the trained model must be gone by the time the cache is emptied
        seen.setdefault("alive_at_empty_cache", []).append(seen.get("model", lambda: None)() is not None)

    monkeypatch.setattr(torch.cuda, "empty_cache", empty_cache)
    s = train(
        data, "tiny-random", tmp_path / "ac", _steps(max_steps=2, activation_checkpointing=True), callbacks=[Watch()]
    )
    assert seen["checkpointing"] is True and s["activation_checkpointing"] is True and s["steps"] == 2
    assert seen["alive_at_empty_cache"][-1] is False


def test_a_distributed_run_exits_normally(tmp_path):
    """`tracekd` after a torch.distributed run closes the process group and exits through the
    interpreter, so atexit handlers (wandb's among them) run; os._exit skipped them."""
    script = f"""
import atexit, sys
import torch.distributed as dist
from tracekd import cli
dist.init_process_group("gloo", init_method="file://{tmp_path / "pg"}", rank=0, world_size=1)
atexit.register(lambda: print("atexit ran", flush=True))
sys.argv = ["tracekd", "report", "{tmp_path / "none"}"]
cli.main()
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2 and "no results.json" in r.stderr
    assert "atexit ran" in r.stdout
