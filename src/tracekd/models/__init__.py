"""Models: named presets, the offline SmolLM2 conversion, tiny random models for tests."""

from tracekd.models.presets import PRESETS, ModelSpec, resolve

__all__ = ["PRESETS", "ModelSpec", "resolve"]
