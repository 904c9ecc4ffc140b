"""GPU check: LoRA SFT throughput and MFU of a randomly initialised Llama-3.2-1B (the paper's
smaller model) in bf16 on one GPU. Prints JSON.

Runs with plain transformers + peft (what GPU images carry), with the llama-3.2-1b-instruct
preset's LoRA settings (r 16, alpha 32, dropout 0.05, all linear layers) and tracekd's loss
(completion only: half of each sequence is masked prompt). No weights are downloaded: the model
is built from the published config with random weights, which costs the same FLOPs.

FLOPs per token: LoRA training does the forward (2 N) and the activation gradients (2 N) of the
frozen weights, not their weight gradients: 4 N + 12 L s d for attention; the usual full
fine-tuning count 6 N + 12 L s d is reported beside it. N counts the matmul weights (layers and
the tied lm_head). MFU is against the measured bf16 matmul peak and the H100 datasheet (989 TFLOP/s).

Levers (off by default; each is recorded in the JSON): `--liger` (Liger's fused linear
cross-entropy: the 128k-vocabulary logits are never materialised; needs liger-kernel),
`--lora-dropout 0` (dropout masks on every adapted layer's input cost time), `--attn` (sdpa,
flash_attention_2 when flash-attn is installed, eager), `--packing` (padding-free: each batch
packed into one row with position ids restarting per sequence; needs flash_attention_2; the
random batches here have no padding to save, so it shows only its overhead). `--dry`: a 2-layer
model of the same vocabulary on the CPU, two steps (what the device check's dry mode runs).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig

LLAMA_3_2_1B = {
    "vocab_size": 128256,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "max_position_embeddings": 131072,
    "rope_theta": 500000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
    "rope_scaling": {
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
}


def matmul_peak(device: str, n: int = 8192) -> float:
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    t = time.perf_counter()
    for _ in range(20):
        a @ b
    _sync(device)
    return 2 * n**3 * 20 / (time.perf_counter() - t)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def build(a: argparse.Namespace, device: str):
    shape = dict(LLAMA_3_2_1B)
    if a.dry:
        shape.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, head_dim=16)
    if a.liger:  # before the model is built: Liger patches the Llama classes
        from liger_kernel.transformers import apply_liger_kernel_to_llama

        apply_liger_kernel_to_llama(fused_linear_cross_entropy=True, cross_entropy=False)
    cfg = LlamaConfig(**shape)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation=a.attn).to(device)
    return cfg, model


def batch(bs: int, seq: int, vocab: int, device: str, packing: bool) -> dict[str, torch.Tensor]:
    """Random ids, the first half of each sequence a masked prompt; packed: one row, position ids
    restarting at each sequence (transformers' padding-free path)."""
    ids = torch.randint(0, vocab, (bs, seq), device=device)
    labels = ids.clone()
    labels[:, : seq // 2] = -100
    if not packing:
        return {"input_ids": ids, "labels": labels}
    positions = torch.arange(seq, device=device).repeat(bs)
    labels[:, 0] = -100  # no sequence predicts across the boundary
    return {"input_ids": ids.reshape(1, -1), "labels": labels.reshape(1, -1), "position_ids": positions[None]}


def main() -> None:
    ap = argparse.ArgumentParser(description="LoRA SFT throughput and MFU of a random Llama-3.2-1B")
    ap.add_argument("--dry", action="store_true", help="CPU, a 2-layer model of the same vocabulary, two steps.")
    ap.add_argument("--liger", action="store_true", help="Liger's fused linear cross-entropy.")
    ap.add_argument("--lora-dropout", type=float, default=0.05)
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "flash_attention_2", "eager"])
    ap.add_argument("--packing", action="store_true", help="Padding-free batches (flash_attention_2).")
    a = ap.parse_args()
    device = "cpu" if a.dry else "cuda"
    torch.manual_seed(0)
    cfg, model = build(a, device)
    d, L, V = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size
    n_layers = sum(p.numel() for n, p in model.named_parameters() if ".layers." in n and p.dim() == 2)
    n_matmul = n_layers + d * V  # + the tied lm_head
    model = get_peft_model(
        model,
        LoraConfig(
            r=16, lora_alpha=32, lora_dropout=a.lora_dropout, target_modules="all-linear", task_type="CAUSAL_LM"
        ),
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    peak = matmul_peak(device, 512 if a.dry else 8192)
    runs = []
    shapes = ((2, 64),) if a.dry else ((8, 1024), (16, 1024), (32, 512))
    warm, n = (1, 2) if a.dry else (3, 10)
    for bs, seq in shapes:
        inputs = batch(bs, seq, V, device, a.packing)

        def step(inputs=inputs):
            loss = model(**inputs).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        for _ in range(warm):
            step()
        _sync(device)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        for _ in range(n):
            step()
        _sync(device)
        dt = time.perf_counter() - t
        tps = bs * seq * n / dt
        attn = 12 * L * seq * d
        lora_flops, full_flops = 4 * n_matmul + attn, 6 * n_matmul + attn
        runs.append(
            {
                "batch": bs,
                "seq": seq,
                "tokens_per_s": round(tps),
                "mfu_lora_flops_vs_measured_peak": round(tps * lora_flops / peak, 3),
                "mfu_lora_flops_vs_989_tflops": round(tps * lora_flops / 989e12, 3),
                "mfu_6n_convention_vs_989_tflops": round(tps * full_flops / 989e12, 3),
                "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
            }
        )
    print(
        json.dumps(
            {
                "benchmark": "gpu_lora_sft_llama_3_2_1b_random_bf16" + ("_dry_cpu" if a.dry else ""),
                "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
                "torch": torch.__version__,
                "levers": {"liger": a.liger, "lora_dropout": a.lora_dropout, "attn": a.attn, "packing": a.packing},
                "params_total": sum(p.numel() for p in model.parameters()),
                "params_trainable": trainable,
                "measured_matmul_tflops": round(peak / 1e12, 3),
                "runs": runs,
                "best_mfu_vs_measured_peak": max(r["mfu_lora_flops_vs_measured_peak"] for r in runs),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
