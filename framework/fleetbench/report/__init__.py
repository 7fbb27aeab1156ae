"""Reports: aggregation query results → tables (terminal, markdown, csv, json)."""

from fleetbench.report.tables import Report, build_report, render

__all__ = ["Report", "build_report", "render"]
