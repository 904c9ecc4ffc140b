"""Interventions on traces: forced traces, the model continues, the answer is scored (`tracekd intervene`)."""
