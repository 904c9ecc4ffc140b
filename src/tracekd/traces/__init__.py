"""Traces: the prompt, the trace renderer and parser, and the SFT conditions."""

from tracekd.traces.render import TEMPLATES, Trace, render
from tracekd.traces.parse import parse

__all__ = ["TEMPLATES", "Trace", "parse", "render"]
