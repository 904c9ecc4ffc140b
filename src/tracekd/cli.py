"""The `tracekd` command line. Each command is a thin wrapper over a pipeline module."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from tracekd.errors import InputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Trace-based knowledge distillation with verifiable traces.",
)
err = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 120)  # wide tables when piped to a file



@app.callback()
def _root() -> None:
    """Trace-based knowledge distillation with verifiable traces."""


DATASETS = ("cotempqa", "babi", "msmarco", "synthetic-temporal", "synthetic-babi")


@app.command()
def prepare(
    dataset: Annotated[str, typer.Option(help=f"One of: {', '.join(DATASETS)}.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")],
    source: Annotated[Optional[str], typer.Option(help="A file, a folder or a hub id.")] = None,
    size: Annotated[Optional[int], typer.Option(help="Number of examples (synthetic datasets).")] = None,
    condition: Annotated[list[str], typer.Option(help="answer_only, correct, incorrect, wrong_label, wrong_evidence, swapped, or all (repeatable; several go to OUT/<condition>/).")] = ["correct"],
    template: Annotated[str, typer.Option(help="paper or tagged.")] = "paper",
    seed: Annotated[int, typer.Option(help="Seed of the perturbations.")] = 0,
    subset: Annotated[Optional[list[str]], typer.Option(help="Subset / task to keep (repeatable).")] = None,
    ir_rule: Annotated[Optional[str], typer.Option(help="CoTempQA evidence rule: tracekd or paper.")] = None,
    preset: Annotated[Optional[str], typer.Option(help="bAbI preset: all or paper.")] = None,
    data_seed: Annotated[int, typer.Option(help="Seed of the train/test split and of synthetic data.")] = 42,
    limit_train: Annotated[Optional[int], typer.Option(help="Keep at most N train examples.")] = None,
    limit_test: Annotated[Optional[int], typer.Option(help="Keep at most N test examples.")] = None,
) -> None:
    """Build SFT files (train.jsonl, test.jsonl, manifest.json) for one condition."""
    from tracekd.prepare import DataOptions
    from tracekd.prepare import prepare as run_prepare

    opts = DataOptions(
        dataset=dataset, source=source, size=size, subsets=subset or None, ir_rule=ir_rule,
        preset=preset, data_seed=data_seed, limit_train=limit_train, limit_test=limit_test,
    )
    manifests = run_prepare(opts, condition, template, seed, out_dir)
    for cond, manifest in manifests.items():
        c = manifest["counts"]
        where = out_dir if len(manifests) == 1 else out_dir / cond
        out.print(
            f"[bold]{dataset}[/] / {cond} / {template}: "
            f"{c['train']['total']} train, {c['test']['total']} test -> {where}"
        )
    flags = manifest["decomposition"]["flags"]
    if flags:
        out.print("decomposition flags: " + ", ".join(f"{k}={v}" for k, v in flags.items()))


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option(help="Prepared folder (its test.jsonl is the gold).")],
    predictions: Annotated[Path, typer.Option(help="JSONL with `id` and `output`.")],
    out_file: Annotated[Path, typer.Option("--out", help="Scores JSON.")],
    examples: Annotated[Optional[Path], typer.Option(help="Per-example JSONL (default: OUT with .examples.jsonl).")] = None,
    allow_missing: Annotated[bool, typer.Option(help="Count test examples without a prediction as wrong.")] = False,
) -> None:
    """Score predictions: answers, trace steps and their association."""
    from tracekd.score.evaluate import evaluate as run_evaluate
    from tracekd.score.tables import print_summary

    summary = run_evaluate(data, predictions, out_file, examples, allow_missing)
    print_summary(out, str(predictions), summary)
    out.print(f"scores -> {out_file}")


@app.command()
def rescore(
    files: Annotated[list[Path], typer.Argument(help="Published output files.")],
    fmt: Annotated[str, typer.Option("--format", help="Output format: trace-check-qa.")] = "trace-check-qa",
    dataset: Annotated[str, typer.Option(help="Dataset the outputs answer.")] = "cotempqa",
    source: Annotated[Optional[str], typer.Option(help="The dataset's file, folder or hub id.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write all scores as JSON.")] = None,
    ir_rule: Annotated[Optional[str], typer.Option(help="Gold evidence rule: tracekd (default) or paper (what the paper's models were trained to cite).")] = None,
) -> None:
    """Rescore published model outputs (e.g. the paper's) with tracekd's scorers."""
    from tracekd.jsonio import write_json_atomic
    from tracekd.score.rescore import rescore as run_rescore
    from tracekd.score.tables import print_rescore

    results = run_rescore(fmt, dataset, source, [str(f) for f in files], ir_rule)
    print_rescore(out, results)
    if json_out:
        write_json_atomic(json_out, results)
        out.print(f"scores -> {json_out}")


def main() -> None:
    try:
        app()
    except InputError as e:
        err.print(f"[red]error:[/] {e}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(InputError.exit_code)


if __name__ == "__main__":
    main()
