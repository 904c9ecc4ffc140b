"""Teacher traces: ask a teacher model (an OpenAI-compatible server, or a local model through
tracekd's generator) for reasoning traces, keep the correct ones, and summarise or explain them."""
