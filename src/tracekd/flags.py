"""Command-line flags made from pydantic options models.

An option is defined once, in its model: its type, default, bounds, and its help (the field's
`description`). `Flags(Model)` turns the fields into typer options (`--lora-r`, `--qlora/--no-qlora`,
a repeatable `--subset`; `json_schema_extra={"flag": NAME}` renames one, `{"flag": None}` keeps it
off the command line) and `with_flags` adds them to a command, which gets the model they make.
Every generated flag defaults to "not given": the model's own default applies, and the help says
what it is.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from tracekd.errors import InputError


def _flag_name(name: str, field: FieldInfo) -> str | None:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    flag = extra.get("flag", name)
    return None if flag is None else "--" + str(flag).replace("_", "-")


def _cli_type(annotation: Any) -> Any:
    """The type typer parses: None dropped from unions; a union with a list (`str | list[str]`) is
    a repeatable option; a list of choices is a list of strings (the model checks the choices); a
    mapping is a repeatable KEY=VALUE (the model reads the strings)."""
    if get_origin(annotation) is dict:
        return list[str]
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        lists = [a for a in args if get_origin(a) is list]
        annotation = lists[0] if lists else (args[0] if len(args) == 1 else str)
    if get_origin(annotation) is list and get_origin(get_args(annotation)[0]) is not None:
        return list[str]
    return annotation


def _help(field: FieldInfo) -> str:
    text = field.description or ""
    default = field.get_default(call_default_factory=True) if field.default is not PydanticUndefined else None
    if default is not None and default not in ([], {}) and not isinstance(default, BaseModel):
        shown = str(default).lower() if isinstance(default, bool) else str(default).replace("\n", "\\n")
        text += f" (default: {shown})"  # a default's line ends written as \n: the help stays whole lines
    return text


class Flags:
    """The flags of some options fields (name -> pydantic field)."""

    def __init__(
        self, model: type[BaseModel], fields: dict[str, FieldInfo] | None = None, help: dict[str, str] | None = None
    ):
        """The flags of `model`'s fields (or of `fields`, which `model` takes: a dataset config
        takes every dataset's options); the command gets the `model` they make."""
        fields = model.model_fields if fields is None else fields
        self.model = model
        self.fields = {n: f for n, f in fields.items() if _flag_name(n, f) is not None}
        self.help = help or {}

    def flag(self, name: str) -> str:
        """The command-line name of a field (or the name itself, for a key that is not a field)."""
        field = self.fields.get(name)
        return (_flag_name(name, field) if field is not None else None) or name

    def parameters(self) -> list[inspect.Parameter]:
        out = []
        for name, field in self.fields.items():
            flag, typ = _flag_name(name, field), _cli_type(field.annotation)
            assert flag is not None  # self.fields keeps the fields that have a flag
            decl = f"{flag}/--no-{flag[2:]}" if typ is bool else flag
            if get_origin(typ) is Literal or typ in (int, float, str, bool) or get_origin(typ) is list:
                text = self.help.get(name) or _help(field)
                # built at run time from the field's type (typer reads it), not a static annotation
                annotation = Annotated[typ | None, typer.Option(decl, help=text, show_default=False)]  # type: ignore[valid-type]
            else:
                raise TypeError(f"option {name!r}: no command-line form for {field.annotation!r}")
            out.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation))
        return out

    def build(self, values: dict[str, Any]) -> BaseModel:
        """The model made from this group's flags, taken out of a command's keyword arguments
        (flags not given left out: the model's defaults); a bad value names its flag."""
        given = {n: v for n in self.fields if (v := values.pop(n, None)) is not None}
        try:
            return self.model(**given)
        except ValidationError as e:
            raise self.error(e) from None

    def error(self, e: ValidationError) -> InputError:
        """A model's validation error as one line naming the flag (a check of several options
        names none)."""
        err = e.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:
            return InputError(msg)
        name = next((str(part) for part in err["loc"] if str(part) in self.fields), str(err["loc"][0]))
        return InputError(f"{self.flag(name)}: {msg}")


def _resolved(annotation: Any, fn: Callable[..., Any]) -> Any:
    """A command parameter's annotation (a string under `from __future__ import annotations`)."""
    return eval(annotation, fn.__globals__) if isinstance(annotation, str) else annotation


def with_flags(**groups: Flags) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add each group's flags to a typer command; the command gets each group's model, made
    from the flags, as the keyword argument of that name."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=_resolved(p.annotation, fn))
            for p in inspect.signature(fn).parameters.values()
            if p.name not in groups
        ]
        generated = [p for g in groups.values() for p in g.parameters()]

        @functools.wraps(fn, assigned=("__module__", "__name__", "__qualname__", "__doc__"), updated=())
        def command(**kwargs: Any) -> Any:
            made = {name: g.build(kwargs) for name, g in groups.items()}
            return fn(**kwargs, **made)

        command.__signature__ = inspect.Signature(own + generated)  # type: ignore[attr-defined]
        command.__annotations__ = {}  # typer reads the signature (its own types are resolved above)
        return command

    return decorate
