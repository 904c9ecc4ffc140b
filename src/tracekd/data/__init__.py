"""Datasets: one schema, one interface, a registry. Importing this package registers them all."""

from tracekd.data import babi, cotempqa, msmarco, synthetic  # noqa: F401  (registration)
from tracekd.data.base import REGISTRY, Dataset, Retrieval, get_dataset, target_answers
from tracekd.data.schema import ContextItem, Example

__all__ = ["REGISTRY", "ContextItem", "Dataset", "Example", "Retrieval", "get_dataset", "target_answers"]
