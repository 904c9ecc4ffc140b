"""`tracekd run CONFIG`: every cell (dataset x model x condition x seed) is prepare -> train ->
generate -> score, then the report.

Run folder (`--out`, default runs/<name>):

    config.json                          the validated config the folder belongs to
    data/<dataset>/<condition>/seed-<s>/ prepared train.jsonl, test.jsonl, manifest.json
    cells/<dataset>/<model>/<condition>/seed-<s>/
        train/                           adapter/, checkpoints/, train_summary.json
        predictions.jsonl                outputs, appended batch by batch
        interventions/                   `tracekd intervene` (config `interventions:`, trained cells)
        scores.json, scores.examples.jsonl
        lengths.json                     trace lengths in tokens (targets and outputs)
        cell.json                        written last: the cell is done
    teacher/<dataset>/                   `tracekd teach` on the dataset (teacher conditions only)
    results.json, report.md, report.html, plots/

Every file is written atomically (or appended line by line and resumed). Rerunning skips done
cells; a cell killed during training resumes from its last checkpoint (to the same weights), one
killed during generation from its last finished batch. The baseline (the untrained model) is one
cell per dataset and model: greedy decoding does not depend on the seed.

Several processes may work on one run folder (the same command on N GPUs, or a job array on a
shared filesystem): each claims the next cell that is not done through the cell folder's lock
(`.tracekd.lock`, see tracekd.lock), skips the cells others hold, and removes the temporary files a
killed process left in a cell it claims. The steps cells share (config.json, a data folder, a
dataset's teacher) run under a lock the other processes wait for. The process that finishes the
last cell writes results.json and the report; the others say which cells are still running. Every
path a cell writes is checked to lie inside the run folder.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from tracekd import layout
from tracekd.data.config import DatasetConfig
from tracekd.errors import InputError
from tracekd.experiment.config import ExperimentConfig, ModelConfig
from tracekd.generate.options import GenerateOptions
from tracekd.jsonio import JOURNAL, read_json, remove_stale_temps, write_json_atomic
from tracekd.lock import FolderBusy, folder_lock
from tracekd.traces.conditions import BASELINE
from tracekd.traces.teacher import RESTRICT, needs_teacher, split_condition

REPORT_LOCK = ".report.lock"  # held while results.json and the report are written


@dataclass(frozen=True)
class Cell:
    dataset: DatasetConfig
    model: ModelConfig
    condition: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.dataset.name}/{self.model.name}/{self.condition}/seed-{self.seed}"

    def folder(self, run: Path) -> Path:
        return layout.cell_folder(run, self.dataset.name, self.model.name, self.condition, self.seed)

    @property
    def trained(self) -> bool:
        return split_condition(self.condition)[0] != BASELINE

    @property
    def data_condition(self) -> str:
        # the baseline is only prompted: any condition's test prompts are the same; use `correct`'s
        base, restricted = split_condition(self.condition)
        return ("correct" + (RESTRICT if restricted else "")) if base == BASELINE else self.condition

    def data_folder(self, run: Path) -> Path:
        return layout.data_folder(run, self.dataset.name, self.data_condition, self.seed)


def contained(run: Path, path: Path) -> Path:
    """`path`, which must resolve inside the run folder."""
    if not path.resolve().is_relative_to(run.resolve()):
        raise InputError(f"would write outside the run folder {run}", path)
    return path


def plan(cfg: ExperimentConfig) -> list[Cell]:
    cells = []
    for d in cfg.datasets:
        for m in cfg.models:
            for c in cfg.conditions:
                if m.server is not None and split_condition(c)[0] != BASELINE:
                    continue  # a served model is asked, never trained
                for s in cfg.seeds[:1] if split_condition(c)[0] == BASELINE else cfg.seeds:
                    cells.append(Cell(d, m, c, s))
    return cells


def is_done(cell: Cell, run: Path) -> bool:
    return (cell.folder(run) / layout.CELL).is_file()


def stage_of(cell: Cell, run: Path) -> str:
    """What is already there for a cell (for --dry-run)."""
    f = cell.folder(run)
    if is_done(cell, run):
        return "done"
    if (f / layout.PREDICTIONS).is_file():
        return "generating (resumes)"
    if (f / layout.CELL_TRAIN / layout.TRAIN_SUMMARY).is_file():
        return "trained"
    if any((f / layout.CELL_TRAIN / layout.CHECKPOINTS).glob("checkpoint-*")):
        return "training (resumes from checkpoint)"
    return "to do"


def _check_run_folder(cfg: ExperimentConfig, run: Path) -> None:
    """config.json: the validated config (and the `KEY=VALUE` overrides that made it, if any); a
    folder made with another config is refused."""
    path = run / layout.CONFIG
    current = json.loads(cfg.model_dump_json())
    if path.is_file():
        stored = read_json(path)
        if not isinstance(stored, dict) or _with_new_defaults(stored, current) != current:
            raise InputError("this run folder was made with a different config; use another --out", run)
    else:
        write_json_atomic(path, {**current, "overrides": cfg.overrides} if cfg.overrides else current)


def _with_new_defaults(
    stored: dict[str, Any], current: dict[str, Any], model: type[BaseModel] = ExperimentConfig
) -> dict[str, Any]:
    """The stored config without its overrides; a key that a later tracekd added (absent from an
    older config.json, e.g. `interventions`, `train.sft`) counts as equal where the current value is
    its default."""
    from pydantic_core import to_jsonable_python

    out = {k: v for k, v in stored.items() if k != "overrides"}
    for key, field in model.model_fields.items():
        sub: Any = field.annotation
        if key not in out and key in current and not field.is_required():
            default = to_jsonable_python(field.get_default(call_default_factory=True))
            if current[key] == default:
                out[key] = default
        elif _is_model(sub) and isinstance(out.get(key), dict):
            out[key] = _with_new_defaults(out[key], current.get(key) or {}, sub)
        elif get_origin(sub) is list and _is_model(get_args(sub)[0]) and isinstance(out.get(key), list):
            item, stored_items = get_args(sub)[0], out[key]  # e.g. `models`, `datasets`
            now: list[Any] = current[key] if isinstance(current.get(key), list) else []
            out[key] = [
                _with_new_defaults(v, now[i], item)
                if i < len(now) and isinstance(v, dict) and isinstance(now[i], dict)
                else v
                for i, v in enumerate(stored_items)
            ]
    return out


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


@contextmanager
def shared_step(folder: Path) -> Iterator[None]:
    """Hold the lock of a folder several cells share (a data folder, a teacher folder), waiting for
    another process at work there (`.<name>.lock` beside the folder); what a killed one left
    half-written there is removed first."""
    with folder_lock(folder.parent, "tracekd run", lock_name=f".{folder.name}.lock", wait=True):
        remove_stale_temps(folder, recursive=True)
        yield


def ensure_data(cell: Cell, cfg: ExperimentConfig, run: Path) -> Path:
    from tracekd.prepare import prepare

    out = cell.data_folder(run)
    with shared_step(out):
        if (out / layout.MANIFEST).is_file() and not (out / JOURNAL).exists():
            return out
        teacher = teacher_folder(cell.dataset, run) if needs_teacher(cell.data_condition) else None
        prepare(cell.dataset, cell.data_condition, cfg.template, cell.seed, out, teacher)
    return out


def teacher_folder(d: DatasetConfig, run: Path) -> Path:
    return layout.teacher_folder(run, d.name)


def ensure_teacher(d: DatasetConfig, cfg: ExperimentConfig, run: Path, progress=None) -> Path:
    """Teach once per dataset: the dataset's prompts (both splits) to the teacher of the `teacher:`
    block, with summaries / explanations when a condition needs them. Cached and resumable: a
    rerun asks nothing that was answered."""
    from tracekd.prepare import prepare
    from tracekd.teach.run import teach

    folder = teacher_folder(d, run)
    data = folder / layout.TEACHER_PROMPTS
    bases = {split_condition(c)[0] for c in cfg.conditions}
    assert cfg.teacher is not None  # the config refuses a condition that needs one without it
    opts = cfg.teacher.model_copy(
        update={
            "summary": cfg.teacher.summary or "teacher_summary" in bases,
            "posthoc": cfg.teacher.posthoc or "teacher_posthoc" in bases,
        }
    )
    with shared_step(folder):
        if not (data / layout.MANIFEST).is_file() or (data / JOURNAL).exists():
            prepare(d, "answer_only", cfg.template, 0, data)
        teach(data, folder, opts, progress)
    return folder


def _progress_callback(report):
    """A TrainerCallback reporting optimiser steps to `report(step, total)`."""
    from transformers import TrainerCallback

    class StepProgress(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            report(state.global_step, state.max_steps)

    return StepProgress()


def run_cell(cell: Cell, cfg: ExperimentConfig, run: Path, progress=None) -> dict[str, Any]:
    from tracekd.generate.run import generate
    from tracekd.models.loading import release_memory
    from tracekd.score.evaluate import evaluate
    from tracekd.score.length import trace_lengths
    from tracekd.train.sft import train

    folder = cell.folder(run)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    data = ensure_data(cell, cfg, run)
    timings["prepare_s"] = time.perf_counter() - t
    adapter = None
    if cell.trained:
        tdir = folder / layout.CELL_TRAIN
        if not (tdir / layout.TRAIN_SUMMARY).is_file():
            t = time.perf_counter()
            opts = cfg.train.model_copy(update={"seed": cell.seed})
            cb = [_progress_callback(lambda s, n: progress("train", s, n))] if progress else None
            train(data, cell.model.model, tdir, opts, resume=True, callbacks=cb)
            timings["train_s"] = time.perf_counter() - t
            release_memory()
        adapter = layout.final_weights(tdir, cfg.train.full)
    t = time.perf_counter()
    model = str(adapter) if cfg.train.full and adapter is not None else cell.model.model
    generate(
        data,
        model,
        folder / layout.PREDICTIONS,
        None if cfg.train.full else adapter,
        generate_options(cell, cfg),
        progress=(lambda done, total: progress("generate", done, total)) if progress else None,
    )
    timings["generate_s"] = time.perf_counter() - t
    release_memory()
    summary = evaluate(data, folder / layout.PREDICTIONS, folder / layout.SCORES)
    if cell_interventions(cell, cfg):
        t = time.perf_counter()
        run_interventions(cell, cfg, run, data, model, None if cfg.train.full else adapter, progress)
        timings["interventions_s"] = time.perf_counter() - t
        release_memory()
    if cell.model.server is None:  # a served model's tokenizer is the server's
        write_json_atomic(
            folder / layout.LENGTHS, trace_lengths(data, folder / layout.PREDICTIONS, cell.model.model, cell.trained)
        )
    write_json_atomic(folder / layout.CELL, {"key": cell.key, "status": "done", "timings": timings})
    return summary


def generate_options(cell: Cell, cfg: ExperimentConfig) -> GenerateOptions:
    """The config's generation options; for a served model, its server's with the openai backend."""
    if cell.model.server is None:
        return cfg.generate
    return GenerateOptions.model_validate(
        {**cfg.generate.model_dump(), **cell.model.server.model_dump(), "backend": "openai"}
    )


def _check_training_data(cfg: ExperimentConfig, run: Path, todo: list[Cell]) -> None:
    """Before any cell runs (the baseline's included): each model's training data fits its
    `max_length` (checked on the first trained cell of each dataset and model; teacher conditions
    are checked when their cell trains)."""
    from tracekd.train.sft import check_trainable

    first: dict[tuple[str, str], Cell] = {}
    for c in todo:
        if c.trained and not needs_teacher(c.data_condition):
            first.setdefault((c.dataset.name, c.model.name), c)
    for c in first.values():
        try:
            check_trainable(ensure_data(c, cfg, run), c.model.model, cfg.train)
        except InputError as e:
            raise InputError(
                f"{c.key}: {e.message}", run / layout.CONFIG, key=f"train.{e.key}" if e.key else None
            ) from None


ANSWER_ONLY_INTERVENTIONS = ("gold", "no_trace")  # what a trace would have given a model trained without one


def cell_interventions(cell: Cell, cfg: ExperimentConfig) -> list[str]:
    """The interventions a cell runs: the config's for a trained cell whose outputs have a trace;
    gold and no trace for an answer-only one; none for the untrained baseline."""
    if not cell.trained or not cfg.interventions:
        return []
    if split_condition(cell.condition)[0] == "answer_only":
        return list(ANSWER_ONLY_INTERVENTIONS)
    return list(cfg.interventions)


def run_interventions(cell: Cell, cfg: ExperimentConfig, run: Path, data: Path, model: str, adapter, progress=None):
    """The interventions stage of a cell: cells/.../interventions/ (resumed like generation)."""
    from tracekd.intervene.run import intervene

    intervene(
        data,
        model,
        contained(run, cell.folder(run) / layout.CELL_INTERVENTIONS),
        adapter,
        cell.folder(run) / layout.PREDICTIONS,
        cell_interventions(cell, cfg),
        cfg.generate,
        cell.seed,
        progress=(lambda done, total: progress("interventions", done, total)) if progress else None,
    )


def run_experiment(cfg: ExperimentConfig, run: Path, dry_run: bool = False, console=None) -> dict[str, Any] | None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    cells = plan(cfg)
    for c in cells:
        contained(run, c.folder(run))
        contained(run, c.data_folder(run))
    for d in cfg.datasets:
        contained(run, teacher_folder(d, run))
    if not dry_run:
        check_devices(cfg, cells)
    if dry_run:
        t = Table(title=f"{cfg.name}: {len(cells)} cells -> {run}", header_style="bold")
        for col in ("dataset", "model", "condition", "seed", "state"):
            t.add_column(col)
        for c in cells:
            t.add_row(c.dataset.name, c.model.name, c.condition, str(c.seed), stage_of(c, run))
        console.print(t)
        return None
    _open_run_folder(cfg, run)
    return _run_cells(cfg, run, cells, console)


def _open_run_folder(cfg: ExperimentConfig, run: Path) -> None:
    """Remove what killed writers left in the run folder and check it holds this experiment. The
    temporary files of a process writing the report at this moment are live: wait for it."""
    with folder_lock(run, "tracekd run", wait=True):
        with folder_lock(run, "tracekd run", lock_name=REPORT_LOCK, wait=True):
            remove_stale_temps(run)
        _check_run_folder(cfg, run)


def check_devices(cfg: ExperimentConfig, cells: list[Cell]) -> None:
    """A model made for a CUDA GPU, or for 4-bit QLoRA, stops the run before any cell when this
    machine lacks it (unless `train.use_cpu` / `train.qlora=false` say otherwise)."""
    from tracekd.models.loading import require_device
    from tracekd.models.presets import resolve
    from tracekd.train.sft import device_policy

    for c in cells:
        if c.model.server is not None:  # the server's machine decodes
            continue
        spec = resolve(c.model.model)
        require_device(spec, cfg.train.use_cpu)
        if c.trained:
            device_policy(spec, cfg.train)


@contextmanager
def claim(cell: Cell, run: Path) -> Iterator[bool]:
    """Hold the cell (its folder's lock) for the body: True when this process got it and the cell
    is not done, False when another process holds it or has finished it meanwhile."""
    with ExitStack() as held:
        try:
            held.enter_context(folder_lock(cell.folder(run), "tracekd run"))
        except FolderBusy:
            yield False
            return
        if is_done(cell, run):
            yield False
            return
        remove_stale_temps(cell.folder(run), recursive=True)
        yield True


def _run_cells(cfg: ExperimentConfig, run: Path, cells: list[Cell], console) -> dict[str, Any] | None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    todo = [c for c in cells if not is_done(c, run)]
    _check_training_data(cfg, run, todo)
    console.print(f"[bold]{cfg.name}[/]: {len(cells)} cells, {len(cells) - len(todo)} already done -> {run}")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    ran = 0
    with Progress(*columns, console=console, transient=False) as bar:
        overall = bar.add_task("cells", total=len(cells), completed=len(cells) - len(todo))
        stage = bar.add_task("", total=1, visible=False)
        for d in [d for d in cfg.datasets if any(needs_teacher(c.data_condition) for c in todo if c.dataset is d)]:

            def teaching(kind, done, total, d=d):
                bar.update(
                    stage, description=f"  {d.name}: teacher {kind}s", completed=done, total=max(total, 1), visible=True
                )

            bar.update(stage, description=f"  {d.name}: teacher", completed=0, total=1, visible=True)
            ensure_teacher(d, cfg, run, teaching)
        for cell in todo:

            def report(name, done, total, cell=cell):
                bar.update(
                    stage, description=f"  {cell.key}: {name}", completed=done, total=max(total, 1), visible=True
                )

            with claim(cell, run) as mine:
                if mine:
                    bar.update(stage, description=f"  {cell.key}: prepare", completed=0, total=1, visible=True)
                    run_cell(cell, cfg, run, report)
                    console.print(f"done: {cell.key}")
                    bar.advance(overall)
                    ran += 1
    return _finish(cfg, run, cells, console, ran_cells=ran > 0)


def _finish(cfg: ExperimentConfig, run: Path, cells: list[Cell], console, ran_cells: bool) -> dict[str, Any] | None:
    """results.json and the report, once every cell is done: written by the process that finishes
    the last cell (another finishing at the same moment finds them newer than every cell), or
    rebuilt by a rerun that had nothing to do. None while other processes still hold cells."""
    from tracekd.report.build import write_report
    from tracekd.report.results import results_from_run

    left = [c.key for c in cells if not is_done(c, run)]
    if left:
        console.print(
            f"{len(left)} cell(s) still running in other processes ({', '.join(left[:3])}"
            f"{', ...' if len(left) > 3 else ''}); the process that finishes the last writes the report"
        )
        return None
    with folder_lock(run, "tracekd run", lock_name=REPORT_LOCK, wait=True):
        results_file = run / layout.RESULTS
        newest_cell = max((c.folder(run) / layout.CELL).stat().st_mtime_ns for c in cells)
        if ran_cells and results_file.is_file() and results_file.stat().st_mtime_ns > newest_cell:
            console.print(f"report: written by another process in {run}")
            return read_json(results_file)
        results = results_from_run(cfg, run, cells)
        paths = write_report(results, run)
    console.print(f"report: {paths['html']}")
    return results
