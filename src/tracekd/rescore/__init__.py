"""Rescore: published model outputs (the paper's) read, joined to the dataset, scored like any
prediction, and written as results.json and the report — `tracekd rescore`."""
