"""Traces: the prompt, the trace renderer and parser, and the SFT conditions."""

from tracekd.traces.parse import parse
from tracekd.traces.render import TEMPLATES, Trace, render

__all__ = ["TEMPLATES", "Trace", "parse", "render"]
