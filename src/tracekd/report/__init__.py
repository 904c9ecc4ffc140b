"""Reports: results.json, report.md and a self-contained report.html with plots and examples."""
