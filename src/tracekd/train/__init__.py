"""Training: LoRA / QLoRA / full SFT on prepared data with TRL's SFTTrainer."""
