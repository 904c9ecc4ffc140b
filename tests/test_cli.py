"""`tracekd <command> --help` prints whole sentences: no sentence is cut by a line end written in
the source (a docstring wrapped at 120 columns, a default value holding a newline).

The check: rendered 1000 columns wide, rich wraps no text, so every line end left in the help is
the layout's (the usage line, a panel's border, one table row per option or command) or a hard
newline from the text. A hard newline inside a sentence leaves a line of prose that does not end
one. So every line of prose — the description's lines and each row of the Commands, Options and
Arguments panels, their borders and padding removed — must end like a sentence or a clause: `.`,
`:`, `?`, `!`, `)` or `]` (typer's own `[default: x]`, `[required]`)."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from tracekd import cli

BORDER = re.compile(r"[│╭╮╰╯─]")
SENTENCE_END = re.compile(r"[.:?!)\]]$")


def _paths(command: typer.main.click.Command, prefix: tuple[str, ...] = ()):
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from _paths(sub, (*prefix, name))


COMMANDS = list(_paths(typer.main.get_command(cli.app)))


def broken_lines(app: typer.Typer, path: tuple[str, ...]) -> list[str]:
    """The lines of prose in `path --help` that do not end a sentence (rendered 1000 columns wide)."""
    r = CliRunner().invoke(app, [*path, "--help"], terminal_width=1000, env={"COLUMNS": "1000"})
    assert r.exit_code == 0, r.output
    bad = []
    for line in r.output.splitlines():
        if line.lstrip().startswith("╭"):  # a panel's title: Options, Arguments, Commands
            continue
        text = BORDER.sub("", line).strip()
        if text and not text.startswith("Usage:") and not SENTENCE_END.search(text):
            bad.append(text)
    return bad


def test_every_command_is_listed():
    assert {"train", "teach", "run", "prepare", "generate", "evaluate"} <= {p[0] for p in COMMANDS if p}
    assert ("humanstudy", "analyze") in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "tracekd")
def test_help_is_whole_sentences(path):
    assert broken_lines(cli.app, path) == []


def _app(help_text: str) -> typer.Typer:
    app = typer.Typer()

    @app.command(help=help_text)
    def one() -> None:
        pass

    @app.command()
    def two() -> None:
        """Another."""

    return app


def test_the_check_finds_a_sentence_cut_by_a_hard_newline():
    """A help text wrapped in the source fails the check; the same text as cli.py turns a
    docstring into help passes it."""
    wrapped = """Fine-tune a model on prepared data (loss on the completion only). Every training option
    is a flag (its default: TrainOptions)."""
    assert any(line.endswith("Every training option") for line in broken_lines(_app(wrapped), ()))
    assert broken_lines(_app(cli.whole_sentences(wrapped)), ()) == []
    assert cli.whole_sentences("A\n    b.\n\n    C\n    d.") == "A b.\n\nC d."
