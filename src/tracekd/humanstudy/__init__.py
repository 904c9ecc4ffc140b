"""`tracekd humanstudy`: a study in which people rate traces (interpretability, cognitive load) and
verify them (spot a known-wrong step, and how fast).

- `spec.py`      the study spec (what `create` reads) and the study file (what it writes), pydantic
- `design.py`    traces from prepared folders, the wrong-step variants, the balanced assignment
- `db.py`        the answers database (SQLAlchemy; SQLite in WAL mode by default)
- `app.py`       the web app (FastAPI + Jinja2 templates, `templates/`) — `serve`
- `export.py`    tidy long CSV, one row per participant × page × question — `export`
- `simulate.py`  synthetic participants with a chosen effect; power by simulation — `simulate`, `power`
- `analyze.py`   exclusions, per-type summaries, mixed and ordinal models, reliability, verification — `analyze`
- `report.py`    plots, findings in words, the report page
"""
