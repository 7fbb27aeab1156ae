"""`fleetbench export`: stored results in other tools' formats, each file written whole into an existing directory.

| format | files |
|---|---|
| csv, json, markdown | `report.csv` / `report.json` / `report.md`: the report's table, same column names |
| parquet | `units.parquet` (one row per unit) and `calls.parquet` (one row per LLM call) |
| master_json | `master_database.json`: the original WorkflowBench's hierarchy (reference §5.1) |
| csv50 | `test_results_complete.csv`: the original's 50-column CSV (reference §8) |
| inspect | `<time>_<suite>_<model>[_partN].json`: Inspect AI eval logs, one per base model and 5,000 units |
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from fleetbench.interfaces import Storage, Suite
from fleetbench.report.exports import master_database
from fleetbench.report.exports.files import write_text
from fleetbench.report.tables import build_report
from fleetbench.types import ReportFilter

MASTER_JSON = "master_database.json"
CSV50 = "test_results_complete.csv"


def export(
    fmt: str,
    folder: Path,
    storage: Storage,
    suite: Suite,
    filter: ReportFilter,
    by: Sequence[str] = (),
    scope: str = "",
) -> list[Path]:
    """Write the format's files into `folder`; return their paths. `scope`: the report's scope line (what the
    numbers cover), which the JSON and Markdown tables carry."""
    if fmt in ("csv", "json", "markdown"):
        from fleetbench.report.exports.tabular import TABULAR

        name, render = TABULAR[fmt]
        return [write_text(folder / name, render(build_report(storage, filter, suite.metrics(), by, scope)))]
    if fmt == "parquet":
        from fleetbench.report.exports import parquet

        metrics = [m.name for m in suite.metrics()]
        parquet.write_units(storage.export_rows(filter), folder / "units.parquet", metrics)
        parquet.write_calls(storage.export_calls(filter), folder / "calls.parquet")
        return [folder / "units.parquet", folder / "calls.parquet"]
    if fmt in ("master_json", "csv50"):
        master_database.check_suite(suite.factor_names(), suite.metrics(), fmt)
        document = master_database.master_database(storage, filter, suite.metrics())
        if fmt == "master_json":
            return [write_text(folder / MASTER_JSON, json.dumps(document, indent=2, ensure_ascii=False) + "\n")]
        return [write_text(folder / CSV50, master_database.csv50(document))]
    if fmt == "inspect":
        from fleetbench.report.exports.inspect_log import write_logs

        return write_logs(suite, storage.export_transcripts(filter), folder, suite.factor_names())
    raise ValueError(f"export format {fmt!r} is unknown")  # config validation refuses it first
