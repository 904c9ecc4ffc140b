"""Generation: batched greedy decoding of prepared test prompts (transformers, or vLLM)."""
