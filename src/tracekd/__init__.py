"""tracekd: trace-based knowledge distillation with verifiable traces.

Pipeline: data -> traces -> train -> generate -> score -> report.
See docs/ARCHITECTURE.md for where each part lives.
"""

__version__ = "0.1.0"
