"""The prompt text a model sees at inference: the chat template with the generation prompt,
rendered exactly as the training prompt (same messages, same template kwargs)."""

from __future__ import annotations

from tracekd.models.presets import ModelSpec


def prompt_text(tok, messages: list[dict[str, str]], spec: ModelSpec) -> str:
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **spec.chat_template_kwargs)


def prompt_ids(tok, messages: list[dict[str, str]], spec: ModelSpec) -> list[int]:
    # the template already holds the special tokens: never add a second BOS
    return tok(prompt_text(tok, messages, spec), add_special_tokens=False)["input_ids"]


def stop_ids(tok, generation_config) -> list[int]:
    """Decoding stops at the tokenizer's EOS and at every EOS id of the model's generation config."""
    extra = getattr(generation_config, "eos_token_id", None) if generation_config is not None else None
    return sorted({tok.eos_token_id, *(extra if isinstance(extra, list) else [extra])} - {None})
