"""Tiny random chat models for tests: a ~0.1M-parameter Llama or Qwen3 with a byte-level BPE
tokenizer trained locally (on tracekd's own prompts and traces), chat template included.
Everything is seeded: building twice gives the same tokenizer and the same weights.

Kinds: `llama` (ChatML, the SmolLM2 layout), `qwen3` (Qwen3's template) and `llama3`, saved the
way the hub's Llama 3.2 Instruct is: Llama 3's special tokens, Llama 3.2's chat template (BOS
first, a "Today Date" line from `strftime_now`), a tokenizer that adds BOS itself, no pad token
in the tokenizer or the config, several EOS ids in the config."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from tracekd.jsonio import write_folder_atomic

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2 as in SmolLM2
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
# Qwen2's pre-tokenizer: newlines are their own pre-tokens, so a tokenized prompt ending in
# "assistant\n" is a prefix of the tokenized prompt + completion
_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# ChatML; an assistant turn ends with <|im_end|> (= eos) and a newline, as in SmolLM2
CHATML = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _trl_template(name: str) -> str:
    """A model's own chat template (the copies TRL ships: qwen3, llama3_2), so the tiny models render
    prompts like the real ones."""
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja").read_text()


def _corpus() -> list[str]:
    """Text like what the tiny models will see: tracekd prompts and traces of synthetic data."""
    from tracekd.data import get_dataset
    from tracekd.traces.conditions import make_targets
    from tracekd.traces.prompt import prompt_messages
    from tracekd.traces.render import render

    out = []
    for name in ("synthetic-babi", "synthetic-temporal"):
        ds = get_dataset(name, size=60, seed=12345)
        exs = ds.load(None)
        for template in ("paper", "tagged"):
            for trace, _ in make_targets(exs, "correct", 0, ds.labels):
                out.append(render(trace, template, ds.label_sentence))
        out += [m["content"] for ex in exs for m in prompt_messages(ex)]
    return [*out, "system\n", "user\n", "assistant\n", "\n\n"]


@lru_cache(maxsize=4)
def _tokenizer_json(vocab_size: int, specials: tuple[str, ...] = tuple(SPECIALS)) -> str:
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    if specials == tuple(LLAMA3_SPECIALS):  # as Llama 3's tokenizer.json: BOS added to every encoding
        bos = specials[0]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    return tok.to_str()


def build_tokenizer(kind: str = "llama", vocab_size: int = 1024):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    if kind == "llama3":  # Llama 3.2 Instruct: no pad token, eos <|eot_id|>
        tok = PreTrainedTokenizerFast(
            tokenizer_object=Tokenizer.from_str(_tokenizer_json(vocab_size, tuple(LLAMA3_SPECIALS))),
            bos_token="<|begin_of_text|>",
            eos_token="<|eot_id|>",
            model_max_length=4096,
        )
        tok.chat_template = _trl_template("llama3_2")
        return tok
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json(vocab_size)),
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=4096,
    )
    tok.chat_template = _trl_template("qwen3") if kind == "qwen3" else CHATML
    return tok


def build(kind: str = "llama", seed: int = 0, hidden: int = 64, layers: int = 2, init: float = 0.2):
    """(model, tokenizer). `init` 0.2 makes greedy outputs varied (0.02 only repeats one token)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen3Config

    tok = build_tokenizer(kind)
    # Llama 3's config lists <|end_of_text|> and <|eot_id|> as EOS and has no pad token
    eos = [tok.convert_tokens_to_ids("<|end_of_text|>"), tok.eos_token_id] if kind == "llama3" else tok.eos_token_id
    common = {
        "vocab_size": len(tok),
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": hidden // 4,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": True,
        "initializer_range": init,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": eos,
        "pad_token_id": tok.pad_token_id,
    }
    cfg = Qwen3Config(**common) if kind == "qwen3" else LlamaConfig(**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    gc = model.generation_config
    gc.pad_token_id, gc.eos_token_id, gc.bos_token_id = tok.pad_token_id, eos, tok.bos_token_id
    return model, tok


def local_folder(kind: str, root: Path) -> Path:
    """Build once into `root/tiny-random-<kind>` (atomic) and return the folder."""
    out = root / "models" / f"tiny-random-{kind}"
    if (out / "config.json").is_file():
        return out
    model, tok = build(kind)

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    return write_folder_atomic(out, fill)
