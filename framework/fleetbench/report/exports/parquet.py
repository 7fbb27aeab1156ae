"""Units and calls as Parquet (pyarrow), streamed from storage in batches, so an export never holds every row.

A Parquet file has one schema, fixed before the first batch: storage columns get their SQL types, metrics are
doubles, and each cell factor gets the type its values share (booleans, numbers as doubles, else text).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetbench.report.exports.files import staged

if TYPE_CHECKING:
    import pyarrow as pa

BATCH_ROWS = 10_000

_UNIT_TYPES = {
    "unit_key": "string", "suite": "string", "base_model": "string", "instance_index": "int64", "seed": "int64",
    "task_id": "string", "outcome": "string", "turns": "int64", "error_category": "string",
    "infra_status": "string", "deployment": "string", "lane_id": "string", "run_id": "string",
    "started_at": "float64", "duration_s": "float64", "suite_scope": "string", "model_scope": "string",
    "cell_key": "string",
}  # fmt: skip
_CALL_TYPES = {
    "unit_key": "string", "run_id": "string", "base_model": "string", "lane_id": "string", "deployment": "string",
    "credential_id": "string", "attempt": "int64", "started_at": "float64", "latency_s": "float64",
    "status": "string", "prompt_tokens": "int64", "completion_tokens": "int64", "http_status": "int64",
    "error": "string", "cost_usd": "float64",
}  # fmt: skip


def _batches(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, BATCH_ROWS)):
        yield batch


def _kind(values: Sequence[Any]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "bool"
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "float64"
    return "string"


def _schema(first: Sequence[Mapping[str, Any]], known: Mapping[str, str], metrics: Sequence[str]) -> pa.Schema:
    import pyarrow as pa

    names = list(dict.fromkeys(name for row in first for name in row))
    types = {name: known.get(name) or ("float64" if name in metrics else _kind([r.get(name) for r in first]))
             for name in names}  # fmt: skip
    return pa.schema([(name, pa.type_for_alias(types[name])) for name in names])


def _column(values: list[Any], kind: pa.DataType) -> list[Any]:
    import pyarrow as pa

    if pa.types.is_string(kind):
        return [None if v is None else v if isinstance(v, str) else str(v) for v in values]
    if pa.types.is_floating(kind):
        return [None if v is None else float(v) for v in values]
    return values


def write_rows(rows: Iterable[dict[str, Any]], target: Path, known: Mapping[str, str], metrics: Sequence[str]) -> int:
    """Write the rows to `target` as one Parquet file; return how many. A column a later batch adds is refused (one
    suite's rows share their factors and metrics); an empty export writes a file with the known columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    batches = _batches(rows)
    first = next(batches, [])
    schema = (
        _schema(first, known, metrics) if first else pa.schema([(n, pa.type_for_alias(t)) for n, t in known.items()])
    )
    count = 0
    with staged(target) as temporary, pq.ParquetWriter(temporary, schema, compression="zstd") as writer:
        for batch in itertools.chain([first] if first else [], batches):
            extra = {name for row in batch for name in row} - set(schema.names)
            if extra:
                raise ValueError(f"rows gained columns {sorted(extra)} midway; export one suite at a time")
            arrays = [
                pa.array(_column([row.get(field.name) for row in batch], field.type), type=field.type)
                for field in schema
            ]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            count += len(batch)
    return count


def write_units(rows: Iterable[dict[str, Any]], target: Path, metrics: Sequence[str]) -> int:
    """`units.parquet`: one row per stored unit (`Storage.export_rows`)."""
    return write_rows(rows, target, _UNIT_TYPES, metrics)


def write_calls(rows: Iterable[dict[str, Any]], target: Path) -> int:
    """`calls.parquet`: one row per recorded LLM call (`Storage.export_calls`)."""
    return write_rows(rows, target, _CALL_TYPES, ())
