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
"""

from __future__ import annotations

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


def matmul_peak() -> float:
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(20):
        a @ b
    torch.cuda.synchronize()
    return 2 * 8192**3 * 20 / (time.perf_counter() - t)


def main() -> None:
    torch.manual_seed(0)
    cfg = LlamaConfig(**LLAMA_3_2_1B)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa").cuda()
    d, L, V = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size
    n_layers = sum(p.numel() for n, p in model.named_parameters() if ".layers." in n and p.dim() == 2)
    n_matmul = n_layers + d * V  # + the tied lm_head
    model = get_peft_model(
        model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    peak = matmul_peak()
    runs = []
    for bs, seq in ((8, 1024), (16, 1024), (32, 512)):
        ids = torch.randint(0, V, (bs, seq), device="cuda")
        labels = ids.clone()
        labels[:, : seq // 2] = -100

        def step(ids=ids, labels=labels):
            loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        for _ in range(3):
            step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        n = 10
        t = time.perf_counter()
        for _ in range(n):
            step()
        torch.cuda.synchronize()
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
                "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            }
        )
    print(
        json.dumps(
            {
                "benchmark": "gpu_lora_sft_llama_3_2_1b_random_bf16",
                "gpu": torch.cuda.get_device_name(0),
                "torch": torch.__version__,
                "params_total": sum(p.numel() for p in model.parameters()),
                "params_trainable": trainable,
                "measured_bf16_matmul_tflops": round(peak / 1e12, 1),
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
