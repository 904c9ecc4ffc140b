"""The `tracekd` command line. Each command is a thin wrapper over a pipeline module."""

from __future__ import annotations

import gc
import inspect
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

# tracekd makes no network call unless a hub id is asked for: no usage pings from the HF
# libraries (read when huggingface_hub is first imported, so set before any of them is)
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import typer
from rich.console import Console
from rich.markup import escape as rich_escape

from tracekd import layout
from tracekd.data import REGISTRY
from tracekd.data.config import DatasetConfig, option_fields
from tracekd.errors import InputError
from tracekd.flags import Flags, with_flags
from tracekd.generate.options import SERVER_FIELDS, GenerateOptions
from tracekd.models.presets import PRESETS
from tracekd.rescore.formats import REGISTRY as FORMATS
from tracekd.teach.options import TeacherOptions
from tracekd.traces import interventions as _interventions
from tracekd.traces.teacher import REGISTRY as CONDITIONS
from tracekd.traces.teacher import RESTRICT
from tracekd.train.options import TrainOptions

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Trace-based knowledge distillation with verifiable traces.",
)
err = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 140)  # wide tables when piped to a file

#: what an interrupted command kept and how to resume it (set by the command, printed on Ctrl-C)
_on_interrupt: list[Callable[[], str]] = []


def _command_line(*extra: str) -> str:
    args = list(sys.argv[1:])
    return shlex.join(["tracekd", *args, *([] if extra and extra[0] in args else extra)])


def _when_interrupted(kept: Callable[[], str], *extra: str) -> None:
    """On Ctrl-C, print `kept()` and the command line that resumes: this one, plus the option
    `extra` (e.g. `--resume`, or `--out DIR`) unless it was given."""
    _on_interrupt.append(lambda: f"{kept()}; resume with: {_command_line(*extra)}")


# -- help made from the registries (a registered condition, intervention, preset or format is listed) --
def _names(names) -> str:
    return ", ".join(names)


def _condition_help() -> str:
    rule = [c.name for c in CONDITIONS.values() if not c.teacher]
    teacher = [c.name for c in CONDITIONS.values() if c.teacher]
    return (
        f"{_names(rule)}, or all; {_names(teacher)} (with --teacher); any of them ending in {RESTRICT} keeps the "
        "teacher-correct examples only (repeatable; several go to OUT/<condition>/)."
    )


def _intervention_help() -> str:
    truncated = _interventions.groups()["truncate"]
    fractions = " / ".join(f"{_interventions.REGISTRY[n].truncate:g}" for n in truncated)
    names = [n for n in _interventions.REGISTRY if n not in truncated[1:]]
    listed = [f"truncate (each of {fractions} of the trace)" if n in truncated else n for n in names]
    only = {
        kind: [i.name for i in _interventions.REGISTRY.values() if i.applies == (kind,)]
        for kind in ("rule", "freeform")
    }
    return (
        f"Comma-separated: {_names(listed)}. Rule-based traces only: {_names(only['rule'])}; "
        f"free-form traces only: {_names(only['freeform'])}."
    )


def _model_help(what: str = "") -> str:
    return f"Preset ({_names(PRESETS)}), folder or hub id{what}."


@app.callback()
def _root() -> None:
    """Trace-based knowledge distillation with verifiable traces."""


# prepare's flags: the dataset config's and every registered dataset's options
_DATA_FLAGS = Flags(
    DatasetConfig, {**DatasetConfig.model_fields, **option_fields()}, help={"name": f"One of: {', '.join(REGISTRY)}."}
)


@app.command()
@with_flags(config=_DATA_FLAGS)
def prepare(
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")],
    condition: Annotated[
        list[str],
        typer.Option(help=_condition_help()),
    ] = ["correct"],  # noqa: B006 - typer's default of a repeatable option
    template: Annotated[str, typer.Option(help="paper or tagged.")] = "paper",
    seed: Annotated[int, typer.Option(help="Seed of the perturbations.")] = 0,
    teacher: Annotated[
        Path | None,
        typer.Option(help="Folder written by `tracekd teach` (for teacher conditions and @teacher_correct)."),
    ] = None,
    config: DatasetConfig | None = None,
) -> None:
    """Build SFT files (train.jsonl, test.jsonl, manifest.json) for one condition."""
    from tracekd.prepare import prepare as run_prepare

    assert config is not None  # with_flags makes it from the flags
    _when_interrupted(
        lambda: f"{out_dir} holds its previous files or all the new ones, never a mix (prepare publishes them together)"
    )
    try:
        manifests = run_prepare(config, condition, template, seed, out_dir, teacher)
    except InputError as e:
        if e.key is not None:
            e.key = _DATA_FLAGS.flag(e.key)
        raise
    for cond, manifest in manifests.items():
        c = manifest["counts"]
        where = out_dir if len(manifests) == 1 else out_dir / cond
        out.print(
            f"[bold]{config.name}[/] / {cond} / {template}: "
            f"{c['train']['total']} train, {c['test']['total']} test -> {where}"
        )
    decomposition = manifest["decomposition"]["flags"]
    if decomposition:
        out.print("decomposition flags: " + ", ".join(f"{k}={v}" for k, v in decomposition.items()))


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option(help="Prepared folder (its test.jsonl is the gold).")],
    predictions: Annotated[Path, typer.Option(help="JSONL with `id` and `output`.")],
    out_file: Annotated[Path, typer.Option("--out", help="Scores JSON.")],
    examples: Annotated[
        Path | None, typer.Option(help="Per-example JSONL (default: OUT with .examples.jsonl).")
    ] = None,
    allow_missing: Annotated[bool, typer.Option(help="Count test examples without a prediction as wrong.")] = False,
    trace_style: Annotated[
        str,
        typer.Option(
            help="How trace steps are read: rule (the parser), freeform (teacher-style free text), or auto (freeform for a teacher condition's folder)."
        ),
    ] = "auto",
) -> None:
    """Score predictions: answers, trace steps and their association."""
    from tracekd.report.tables import print_summary
    from tracekd.score.evaluate import evaluate as run_evaluate

    summary = run_evaluate(data, predictions, out_file, examples, allow_missing, trace_style)
    print_summary(out, str(predictions), summary)
    out.print(f"scores -> {out_file}")


@app.command()
def rescore(
    files: Annotated[list[Path], typer.Argument(help="Published output files.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help=f"Output format, one of: {'; '.join(f'{n} ({f.doc})' for n, f in FORMATS.items())}."
        ),
    ] = "trace-check-qa",
    dataset: Annotated[
        str, typer.Option(help=f"Dataset the outputs answer, one of: {', '.join(REGISTRY)}.")
    ] = "cotempqa",
    source: Annotated[str | None, typer.Option(help="The dataset's file, folder or hub id.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write all scores as JSON.")] = None,
    ir_rule: Annotated[
        str | None,
        typer.Option(
            help="Primary gold evidence rule: paper (default: what the paper's models were trained to cite) or tracekd; both are shown."
        ),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Also write results.json and the report (md, html, plots) into this folder.")
    ] = None,
    authors_csv: Annotated[
        Path | None,
        typer.Option(
            help="The authors' test CSV folder (<subset>_test.csv): also judge the paper's steps by a port of their "
            "get_confusion_matrices (evidence rule authors-code)."
        ),
    ] = None,
) -> None:
    """Rescore published model outputs (e.g. the paper's) with tracekd's scorers."""
    from tracekd.jsonio import refuse_overwriting, write_json_atomic
    from tracekd.rescore.run import rescore as run_rescore
    from tracekd.rescore.tables import print_rescore

    refuse_overwriting([json_out, *(report / f for f in (layout.RESULTS, *layout.REPORT_FILES) if report)], files)
    rows: dict[str, list] = {}
    results = run_rescore(
        fmt, dataset, source, [str(f) for f in files], ir_rule, rows_out=rows, authors_csv=authors_csv
    )
    print_rescore(out, results)
    if json_out:
        write_json_atomic(json_out, results)
        out.print(f"scores -> {json_out}")
    if report:
        from tracekd.report.build import write_report
        from tracekd.rescore.results import results_from_rescore

        paths = write_report(results_from_rescore(results, rows, report), report)
        out.print(f"report -> {paths['html']}")


_TRAIN_FLAGS = Flags(TrainOptions)


@app.command()
@with_flags(opts=_TRAIN_FLAGS)
def train(
    data: Annotated[Path, typer.Option(help="Prepared folder with train.jsonl.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (adapter/, checkpoints/, train_summary.json).")],
    model: Annotated[
        str,
        typer.Option(help=_model_help()),
    ] = "smollm2-135m",
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in OUT.")] = False,
    opts: TrainOptions | None = None,
) -> None:
    """Fine-tune a model on prepared data (loss on the completion only). Every training option
    is a flag (its default: TrainOptions, the paper's LoRA settings)."""
    from tracekd.train.sft import train as run_train

    _when_interrupted(lambda: _checkpoints_kept(out_dir), "--resume")
    try:
        summary = run_train(data, model, out_dir, opts, resume=resume)
    except InputError as e:
        if e.key is not None:
            e.key = _TRAIN_FLAGS.flag(e.key)
        raise
    if summary:
        out.print(
            f"trained {summary['model']} on {summary['examples']} examples ({summary['steps']} steps, "
            f"loss {_loss(summary['train_loss'])}, {summary['truncated']} truncated) -> {summary['output']}"
        )


def _loss(value: float | None) -> str:
    return "- (nothing left to train)" if value is None else f"{value:.4f}"


def _checkpoints_kept(out_dir: Path) -> str:
    ckpts = sorted(
        (p for p in (out_dir / layout.CHECKPOINTS).glob("checkpoint-*") if p.name[11:].isdigit()),
        key=lambda p: int(p.name[11:]),
    )
    if not ckpts:
        return f"no checkpoint was saved yet in {out_dir / layout.CHECKPOINTS}"
    return f"{len(ckpts)} checkpoint(s) kept in {out_dir / layout.CHECKPOINTS} (newest: {ckpts[-1].name})"


def _lines_kept(path: Path, what: str = "prediction(s)") -> str:
    n = path.read_bytes().count(b"\n") if path.is_file() else 0
    return f"{n} {what} kept in {path}"


@app.command()
@with_flags(opts=Flags(GenerateOptions))
def generate(
    data: Annotated[Path, typer.Option(help="Prepared folder with test.jsonl.")],
    out_file: Annotated[Path, typer.Option("--out", help="Predictions JSONL (id, output); resumed if present.")],
    model: Annotated[
        str, typer.Option(help=_model_help(" of the base model (--backend openai: the name the server knows)"))
    ] = "smollm2-135m",
    adapter: Annotated[Path | None, typer.Option(help="LoRA adapter folder from `tracekd train`.")] = None,
    opts: GenerateOptions | None = None,
) -> None:
    """Greedy, batched generation for the prepared test prompts, or chat requests to any
    OpenAI-compatible server (--backend openai --base-url URL). Every generation option is a flag."""
    from tracekd.generate.run import generate as run_generate

    _when_interrupted(lambda: _lines_kept(out_file))
    s = run_generate(data, model, out_file, adapter, opts)
    out.print(f"{s['generated']} generated, {s['already_done']} already done, {s['total']} in total -> {out_file}")


# intervene appends forced token ids to each prompt: a chat server cannot take them, so none of
# its flags is offered (backend openai is refused with a message)
_LOCAL_GENERATE_FIELDS = {
    n: f for n, f in GenerateOptions.model_fields.items() if n not in SERVER_FIELDS | {"request_seed"}
}


@app.command()
@with_flags(
    opts=Flags(
        GenerateOptions,
        _LOCAL_GENERATE_FIELDS,
        help={
            "backend": "auto: vLLM when installed and a GPU is present, else hf (openai is refused: a server cannot continue forced token ids). (default: auto)"
        },
    )
)
def intervene(
    data: Annotated[Path, typer.Option(help="Prepared folder with test.jsonl.")],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Output folder (interventions.jsonl, interventions.json); resumed if present.")
    ],
    model: Annotated[str, typer.Option(help=_model_help(" of the base model"))] = "smollm2-135m",
    adapter: Annotated[Path | None, typer.Option(help="LoRA adapter folder from `tracekd train`.")] = None,
    predictions: Annotated[
        Path | None,
        typer.Option(
            help="The model's own outputs (`tracekd generate`); default: generated into OUT/predictions.jsonl."
        ),
    ] = None,
    interventions: Annotated[
        str,
        typer.Option(help=_intervention_help()),
    ] = "own,gold,wrong_label,wrong_evidence,no_trace",
    seed: Annotated[int, typer.Option(help="Seed of the interventions' random choices.")] = 0,
    opts: GenerateOptions | None = None,
) -> None:
    """Force traces into the assistant turn and score the answers the model continues with
    (docs/interventions.md). Every local generation option is a flag; a chat server's are not
    (forced text is appended as token ids, which a server cannot take)."""
    from tracekd.intervene.run import intervene as run_intervene

    _when_interrupted(lambda: _lines_kept(out_dir / layout.INTERVENTION_ROWS, "intervention row(s)"))
    names = [n.strip() for n in interventions.split(",") if n.strip()]
    m = run_intervene(data, model, out_dir, adapter, predictions, names, opts, seed)
    for name, iv in m["interventions"].items():
        out.print(
            f"{name}: accuracy {100 * iv['accuracy']['p']:.1f} %, changed {100 * iv['changed']['p']:.1f} % "
            f"({iv['outputs']} outputs)"
        )
    for text in m["findings"]:
        out.print(f"- {rich_escape(text)}")
    out.print(f"interventions -> {out_dir}")


@app.command()
@with_flags(opts=Flags(TeacherOptions))
def teach(
    data: Annotated[Path, typer.Option(help="Prepared folder (its train.jsonl and test.jsonl prompts are asked).")],
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Output folder (responses.jsonl cache, teacher.jsonl, teach_summary.json); resumed if present.",
        ),
    ],
    opts: TeacherOptions | None = None,
) -> None:
    """Ask a teacher model for reasoning traces (cached, resumable, rejection-sampled). Every
    teacher option is a flag (--model is needed)."""
    from tracekd.teach.run import teach as run_teach

    assert opts is not None  # with_flags makes it from the flags
    _when_interrupted(lambda: _lines_kept(out_dir / layout.RESPONSES, "teacher response(s)") + " (never asked again)")
    s = run_teach(data, out_dir, opts)
    a = s["acceptance"]["overall"]
    out.print(
        f"{a['accepted']} of {a['examples']} examples kept ({100 * a['rate']:.1f} %, {a['samples']} samples; "
        f"first-sample accuracy {100 * a['first_sample_accuracy']:.1f} %) -> {out_dir}"
    )
    for sub, r in s["acceptance"]["by_subset"].items():
        out.print(f"  {sub}: {r['accepted']} / {r['examples']} ({100 * r['rate']:.1f} %)")
    sent, cached = s["requests"]["sent"], s["requests"]["cached"]
    out.print(
        "requests: "
        + ", ".join(f"{k} {sent.get(k, 0)} sent / {cached.get(k, 0)} cached" for k in sorted(set(sent) | set(cached)))
    )


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Experiment config (YAML).")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="KEY=VALUE changes to the config (train.lr=1e-4 seeds=[0,1] datasets.0.size=100), recorded in config.json.",
            show_default=False,
        ),
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Run folder (default: runs/<name>).")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the cells and what is already done; run nothing.")
    ] = False,
) -> None:
    """Run a whole experiment: every dataset x model x condition x seed, then the report."""
    from tracekd.experiment.config import load_config
    from tracekd.experiment.runner import run_experiment

    cfg = load_config(config, overrides or [])
    run_dir = out_dir or Path("runs") / cfg.name
    _when_interrupted(lambda: _cells_kept(run_dir), *([] if out_dir else ["--out", str(run_dir)]))
    run_experiment(cfg, run_dir, dry_run=dry_run, console=out)


def _cells_kept(run_dir: Path) -> str:
    done = len(layout.cell_markers(run_dir))
    return (
        f"{done} finished cell(s) kept in {run_dir} (an unfinished cell resumes from its last "
        "checkpoint or its last generated batch)"
    )


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (or a rescore report folder) with results.json.")],
    beside: Annotated[
        Path | None,
        typer.Option(
            help="Another folder with a results.json (e.g. `tracekd rescore --report` of the paper's outputs): "
            "a table of both on the test items they share, kept in RUN_DIR's results.json."
        ),
    ] = None,
) -> None:
    """Rebuild report.md, report.html and the plots from a folder's results.json."""
    from tracekd.report.build import rebuild_report
    from tracekd.report.outputs import read_results

    path = run_dir / layout.RESULTS
    if not path.is_file():
        raise InputError(
            "no results.json in this folder (run `tracekd run` or `tracekd rescore --report` first)", run_dir
        )
    paths = rebuild_report(run_dir, read_results(path), beside)
    out.print(f"report -> {paths['html']}")


humanstudy = typer.Typer(
    no_args_is_help=True, help="A study in which people rate traces and verify them (docs: README, Human study)."
)
app.add_typer(humanstudy, name="humanstudy")
_DB_URL = typer.Option("--db", help="Database URL (default: SQLite, study.db in the study folder).")


@humanstudy.command("create")
def humanstudy_create(
    spec: Annotated[Path, typer.Argument(help="Study spec (YAML; configs/humanstudy-paper.yaml).")],
    out_dir: Annotated[Path, typer.Option("--out", help="New study folder (study.yaml, study.db).")],
) -> None:
    """Draw a balanced, seeded study from prepared (and teacher) folders."""
    from tracekd.humanstudy.design import create
    from tracekd.humanstudy.spec import load_spec

    study = create(load_spec(spec), out_dir)
    b = study.balance
    out.print(
        f"{len(study.plans)} participant slots, {len(study.spec.types)} types, {b['items_used']} items "
        f"({b['item_sets']} set(s) of {b['items_per_set']}; balanced every {b['cycle']} participants) -> {out_dir}"
    )


@humanstudy.command("serve")
def humanstudy_serve(
    study_dir: Annotated[Path, typer.Argument(help="Study folder.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    db: Annotated[str | None, _DB_URL] = None,
    admin_token: Annotated[
        str | None, typer.Option(envvar="TRACEKD_ADMIN_TOKEN", help="Token of /admin away from loopback.")
    ] = None,
) -> None:
    """Serve the study (participants open /?PROLIFIC_PID=...; progress at /admin)."""
    import secrets

    import uvicorn

    from tracekd.humanstudy.app import create_app

    if host not in ("127.0.0.1", "localhost", "::1") and admin_token is None:
        admin_token = secrets.token_urlsafe(16)
        out.print(f"admin view: /admin?token={admin_token}")
    uvicorn.run(create_app(study_dir, db, admin_token), host=host, port=port, log_level="warning")


@humanstudy.command("export")
def humanstudy_export(
    study_dir: Annotated[Path, typer.Argument(help="Study folder.")],
    out_file: Annotated[Path, typer.Option("--out", help="CSV (one row per participant x item x question).")],
    db: Annotated[str | None, _DB_URL] = None,
) -> None:
    """Write the answers as tidy long CSV."""
    from tracekd.humanstudy.export import open_store, rows, write_csv
    from tracekd.humanstudy.spec import load_study

    records = rows(load_study(study_dir), open_store(study_dir, db))
    write_csv(out_file, records)
    out.print(f"{len(records)} rows -> {out_file}")


@humanstudy.command("simulate")
def humanstudy_simulate(
    study_dir: Annotated[Path, typer.Argument(help="Study folder.")],
    effect: Annotated[
        list[str] | None, typer.Option(help="TYPE=SHIFT: interpretability shift in Likert points (repeatable).")
    ] = None,
    participants: Annotated[int | None, typer.Option(help="How many (default: every free slot).")] = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    db: Annotated[str | None, _DB_URL] = None,
) -> None:
    """Fill a study with synthetic participants (seeded, with a chosen effect)."""
    from tracekd.humanstudy.export import open_store
    from tracekd.humanstudy.simulate import parse_effects, simulate
    from tracekd.humanstudy.spec import load_study

    study = load_study(study_dir)
    effects = parse_effects(effect or [], list(study.spec.types))
    n = simulate(study, open_store(study_dir, db), participants, effects, seed)
    out.print(f"{n} synthetic participants added to {study_dir}")


@humanstudy.command("analyze")
def humanstudy_analyze(
    study_dir: Annotated[Path, typer.Argument(help="Study folder.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for analysis.json, plots, report.html.")],
    db: Annotated[str | None, _DB_URL] = None,
    boot: Annotated[int, typer.Option(help="Bootstrap resamples (over participants).")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
) -> None:
    """Exclusions, per-type ratings, models, reliability, verification; findings and a report page."""
    from tracekd.humanstudy.analyze import analyze
    from tracekd.humanstudy.export import open_store, rows
    from tracekd.humanstudy.report import findings, write_report
    from tracekd.humanstudy.spec import load_study

    study = load_study(study_dir)
    result = analyze(study, rows(study, open_store(study_dir, db)), boot, seed)
    paths = write_report(result, out_dir)
    for line in findings(result):
        out.print(rich_escape(line))
    out.print(f"report -> {paths['html']}")


@humanstudy.command("power")
def humanstudy_power(
    study_dir: Annotated[Path, typer.Argument(help="Study folder (its design and items).")],
    compare: Annotated[tuple[str, str], typer.Option(help="The two types of the planned comparison.")],
    effect: Annotated[
        list[str] | None, typer.Option(help="TYPE=SHIFT: interpretability shift in Likert points (repeatable).")
    ] = None,
    participants: Annotated[list[int] | None, typer.Option(help="Numbers of participants to try (repeatable).")] = None,
    reps: Annotated[int, typer.Option(help="Simulated studies per number.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """How many participants detect a given difference (power by simulation)."""
    from tracekd.humanstudy.simulate import parse_effects, power
    from tracekd.humanstudy.spec import load_study

    study = load_study(study_dir)
    effects = parse_effects(effect or [], list(study.spec.types))
    for name in compare:
        if name not in effects:
            raise InputError(f"{name!r} is not a type of this study ({', '.join(effects)})", key="--compare")
    for row in power(study, participants or [len(study.plans)], effects, compare, reps, seed):
        lo, hi = row["ci"]
        out.print(
            f"{row['participants']} participants: power {100 * row['power']:.0f} % [95 % CI {100 * lo:.0f}, {100 * hi:.0f}]"
        )


def _shutdown_distributed() -> None:
    """End a torch.distributed run cleanly before the interpreter exits."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _say(kind: str, message: str) -> None:
    err.print(f"[red]{kind}:[/] {rich_escape(message)}", highlight=False, markup=True, soft_wrap=True)


def _caused_by_ctrl_c(e: BaseException | None) -> bool:
    while e is not None:
        if isinstance(e, KeyboardInterrupt):
            return True
        e = e.__cause__ or e.__context__
    return False


def _interrupted() -> int:
    _say("interrupted", _on_interrupt[-1]() if _on_interrupt else "stopped")
    return 130


#: a full collection rescans every live object; scoring builds hundreds of thousands of small
#: long-lived ones (rows), which the default thresholds (700, 10, 10) rescan dozens of times
GC_THRESHOLDS = (50_000, 20, 20)


def main() -> None:
    code: int = 0
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        app()
    except InputError as e:
        _say("error", str(e))
        code = InputError.exit_code
    except OSError as e:  # a folder that cannot be written, a full disk...: one line naming the file
        where = f"{e.filename}: " if e.filename is not None else ""
        _say("error", f"{where}{e.strerror or e}")
        code = InputError.exit_code
    except KeyboardInterrupt:
        code = _interrupted()
    except SystemExit as e:  # typer turns Ctrl-C into exit code 130
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if _caused_by_ctrl_c(e):
            code = _interrupted()
    _shutdown_distributed()
    sys.exit(code)  # a normal exit: atexit handlers run (a wandb run is closed)


def whole_sentences(text: str) -> str:
    """A docstring as help: each paragraph (blank-line separated) on one line. The docstrings are
    wrapped for the source's 120 columns, and typer would print those line ends mid-sentence."""
    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(text).split("\n\n"))


def _help_from_docstrings(typer_app: typer.Typer) -> None:
    for info in typer_app.registered_commands:
        info.help = whole_sentences(info.help or inspect.getdoc(info.callback) or "")
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _help_from_docstrings(group.typer_instance)


_help_from_docstrings(app)  # after every command is registered

if __name__ == "__main__":
    main()
