"""The names of the files and folders tracekd's stages write, each spelled once: a prepared folder,
a training output, predictions and their scores, a teacher folder, interventions, and a run folder
with its cells, results and report. Every module that writes or reads one takes its name (or its
path) from here; docs/outputs.md describes what is in each."""

from __future__ import annotations

from pathlib import Path

# -- a prepared folder (`tracekd prepare`) ---------------------------------------------------------
SPLITS = ("train", "test")


def split_file(split: str) -> str:
    """The prepared records of one split: train.jsonl, test.jsonl."""
    return f"{split}.jsonl"


TRAIN, TEST = map(split_file, SPLITS)
MANIFEST = "manifest.json"
PREPARED = (TRAIN, TEST, MANIFEST)

# -- a training output (`tracekd train --out`) -----------------------------------------------------
TRAIN_SUMMARY = "train_summary.json"
TRAIN_PROVENANCE = "provenance.json"  # what produced it: model, data hash, options (a resume must match it)
CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
FULL_MODEL = "model"


def final_weights(train_dir: Path, full: bool) -> Path:
    """Where a training output keeps its final weights: the adapter, or the whole model (`full`)."""
    return train_dir / (FULL_MODEL if full else ADAPTER)


# -- predictions (`tracekd generate`) and their scores (`tracekd evaluate`) ------------------------
PREDICTIONS = "predictions.jsonl"
SCORES = "scores.json"
LENGTHS = "lengths.json"  # trace lengths in tokens (targets and outputs) of a cell


def provenance_of(predictions: Path) -> Path:
    """What produced a predictions file (model, adapter, data hash, options), beside it."""
    return predictions.with_name(predictions.name + ".provenance.json")


def examples_of(scores: Path) -> Path:
    """The per-example rows beside a scores file (scores.json -> scores.examples.jsonl)."""
    return scores.with_name(scores.stem + ".examples.jsonl")


SCORES_EXAMPLES = examples_of(Path(SCORES)).name

# -- interventions (`tracekd intervene --out`) -----------------------------------------------------
INTERVENTION_ROWS = "interventions.jsonl"
INTERVENTION_SUMMARY = "interventions.json"
INTERVENTION_PROVENANCE = "interventions.provenance.json"  # what produced the rows: a resume must match it

# -- a teacher folder (`tracekd teach --out`) ------------------------------------------------------
RESPONSES = "responses.jsonl"  # the response cache: every answered request
TEACHER_TRACES = "teacher.jsonl"
TEACH_SUMMARY = "teach_summary.json"
TEACHER_SCORES = "teacher_scores.json"
TEACHER_SCORES_EXAMPLES = examples_of(Path(TEACHER_SCORES)).name

# -- a run folder (`tracekd run`, `tracekd rescore --report`, `tracekd report`) --------------------
CONFIG = "config.json"  # the validated experiment config
RESULTS = "results.json"
ROWS = "rows.jsonl.gz"  # every per-example row results.json is computed from
ALL_INTERVENTION_ROWS = "interventions.jsonl.gz"  # every intervention row of the run's cells
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
REPORT_FILES = (REPORT_MD, REPORT_HTML)
PLOTS = "plots"
CELLS = "cells"
CELL = "cell.json"  # written last: the cell is done
CELL_TRAIN = "train"  # a cell's training output
CELL_INTERVENTIONS = "interventions"  # a cell's `tracekd intervene` output


def cell_folder(run: Path, dataset: str, model: str, condition: str, seed: int) -> Path:
    return run / CELLS / dataset / model / condition / f"seed-{seed}"


def cell_markers(run: Path) -> list[Path]:
    """The cell.json of every done cell of a run."""
    return sorted((run / CELLS).glob(f"*/*/*/*/{CELL}"))


def data_folder(run: Path, dataset: str, condition: str, seed: int) -> Path:
    """The prepared folder a run's cells of (dataset, condition, seed) train and are tested on."""
    return run / "data" / dataset / condition / f"seed-{seed}"


TEACHER_PROMPTS = "data"  # in a run's teacher folder: the prepared folder of the prompts it was asked


def teacher_folder(run: Path, dataset: str) -> Path:
    """A run's teacher folder of one dataset."""
    return run / "teacher" / dataset


def teacher_folders(run: Path) -> list[Path]:
    """Every teacher folder of a run that has the teacher's scored outputs, by dataset name."""
    return sorted(p for p in (run / "teacher").glob("*") if (p / TEACHER_SCORES_EXAMPLES).is_file())
