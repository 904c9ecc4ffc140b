"""Experiments: a YAML config of datasets x models x conditions x seeds, run cell by cell."""
