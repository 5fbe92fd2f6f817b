"""Run CSV files in and out: import a run CSV or a public benchmark table, export, template.

Import limits and choices (documented here once):

* Files larger than :data:`MAX_IMPORT_BYTES` are refused before they are read.
* Text must be UTF-8.  A file that is not is read as Windows-1252 (what Excel on Windows writes)
  and the result carries a warning naming the first line that was not UTF-8; a file that is
  neither, or holds NUL bytes (a binary/Excel file), is refused.
* Only comma-separated files are read; a semicolon/tab/pipe-separated file is refused with a
  message naming the separator it seems to use.
* A text field that starts like a spreadsheet formula is refused for that row (see
  :mod:`.store`).  Exports neutralise every such cell anyway (``csvfiles.to_safe_csv``), and an
  import undoes that neutralising quote, so an exported file imports as itself (adds nothing).
* The three formats (a fedopt run CSV, Lambda's benchmark table, the LLM runs table) are told
  apart by the header; every row is validated, refused rows are
  reported with their line number and the rest are stored.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
from sqlmodel import Session

from fedopt_core import csvfiles
from fedopt_core.catalog.datasets import LLM_RUNS_COLUMNS, lambda_benchmark_runs, llm_runs
from fedopt_core.csvfiles import CsvFormatError, Source, to_safe_csv
from fedopt_core.runs.queries import list_runs
from fedopt_core.runs.store import DEFAULT_BATCH_SIZE, ImportAborted, ImportResult, ProgressCallback, store_runs
from fedopt_core.schema import META_FIELDS, RUN_FIELDS, RowError

#: Largest CSV file an import reads (50 MiB, about 300,000 runs).  Larger files are refused
#: before reading; split them.  The Streamlit upload widget uses the same limit.
MAX_IMPORT_BYTES = 50 * 1024 * 1024
#: Rows of a CSV validated together (vectorised); written in transactions of the batch size.
PARSE_CHUNK_ROWS = 20_000

#: Columns our own exports contain that an import ignores (the database assigns them anew).
IGNORED_IMPORT_COLUMNS = ["id", "run_key", "created_at", "source"]
#: Columns of an export (importable again: the ignored ones are dropped on the way in).
EXPORT_COLUMNS = ["id", *RUN_FIELDS, *META_FIELDS, "created_at", "source"]
#: What a run CSV must have.
REQUIRED_COLUMNS = ["gpu_type", "gpu_count", "execution_time_s"]


FORMAT_RUNS = "runs"
FORMAT_LAMBDA_BENCHMARK = "lambda_benchmark"
FORMAT_LLM_RUNS = "llm_runs"
#: Formats of public measurements (stored with source "benchmark", not "csv").
_BENCHMARK_FORMATS = (FORMAT_LAMBDA_BENCHMARK, FORMAT_LLM_RUNS)
#: Columns that identify Lambda's public benchmark table (``gpu_benchmarks.csv``).
LAMBDA_BENCHMARK_COLUMNS = ["model", "gpu_name", "gpu_count", "time_per_1M_units_s"]


def import_csv(
    source: Source,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressCallback | None = None,
    max_bytes: int = MAX_IMPORT_BYTES,
    session: Session | None = None,
) -> ImportResult:
    """Import a run CSV or Lambda's public benchmark table (told apart by the header).

    Every row is validated; refused rows are in ``errors`` with their line number, the rest are
    stored in the same go (batches of ``batch_size`` valid rows, one transaction each).  Importing
    a file twice adds nothing.  ``progress(done_lines, total_lines)`` (data lines of the file)
    runs after each batch.  Raises
    :class:`~fedopt_core.csvfiles.CsvFormatError` when the file as a whole cannot be used (too
    large, empty, binary, wrong separator or header) and :class:`ImportAborted` if storing stops.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    text = csvfiles.read_text(source, max_bytes=max_bytes)
    header, header_line = text.header, text.header_line
    fmt, columns = _detect_format(header)
    result = ImportResult(format=fmt, warnings=list(text.warnings))
    label = getattr(source, "name", None) or (str(source) if isinstance(source, (str, os.PathLike)) else None)
    total_lines = max(1, text.data_lines)
    stored_source = "benchmark" if fmt in _BENCHMARK_FORMATS else "csv"
    # Validation is vectorised, so it runs over chunks much larger than a transaction; memory
    # stays bounded by the chunk, and a crash still loses at most the batch being written.
    chunk_rows = max(batch_size, PARSE_CHUNK_ROWS)
    rows: list[list[str]] = []
    lines: list[int] = []

    def flush() -> None:
        if not rows:
            return
        if fmt == FORMAT_LAMBDA_BENCHMARK:
            mapped = _map_lambda_benchmark(pd.DataFrame(rows, columns=header, dtype=object))
        elif fmt == FORMAT_LLM_RUNS:
            mapped = llm_runs(pd.DataFrame(rows, columns=header, dtype=object))
        else:
            mapped = _unneutralise(pd.DataFrame(rows, columns=[h.lower() for h in header], dtype=object)[columns])
        chunk_lines = list(lines)

        def chunk_progress(done: int, _total: int) -> None:
            if progress is not None:
                progress(min(chunk_lines[done - 1] - header_line, total_lines), total_lines)

        try:
            part = store_runs(
                mapped,
                source=stored_source,
                line_numbers=lines,
                batch_size=batch_size,
                progress=chunk_progress,
                session=session,
                fmt=fmt,
                audit=label,
            )
        except ImportAborted as exc:
            result._add(exc.partial)
            raise ImportAborted(
                f"stopped at line {lines[0]}; {result.inserted} runs from earlier lines are stored "
                f"(whole batches of {batch_size}): {exc.__cause__}",
                result,
            ) from exc.__cause__
        result._add(part)
        rows.clear()
        lines.clear()

    for item in csvfiles.records(text):
        if isinstance(item, csvfiles.Problem):
            result.rows += 1
            result.errors.append(RowError(item.line, "row", item.message))
            continue
        line, record = item
        rows.append(record)
        lines.append(line)
        if len(rows) >= chunk_rows:
            flush()
    flush()
    if progress is not None:
        progress(total_lines, total_lines)
    result.errors.sort(key=lambda e: (e.line is None, e.line or 0))
    if result.rows == 0:
        result.warnings.append("the file has a header but no data rows")
    return result


def _detect_format(header: list[str]) -> tuple[str, list[str]]:
    """Which format the header is, and (for our own format) the columns to read (lower case)."""
    lower = {h.lower() for h in header}
    if all(c.lower() in lower for c in LAMBDA_BENCHMARK_COLUMNS):
        return FORMAT_LAMBDA_BENCHMARK, header
    if all(c.lower() in lower for c in LLM_RUNS_COLUMNS):
        return FORMAT_LLM_RUNS, header
    header = [h.lower() for h in header]  # run fields are lower case; "GPU_Type" is meant as gpu_type
    columns = set(header)
    allowed = set(RUN_FIELDS) | set(META_FIELDS) | set(IGNORED_IMPORT_COLUMNS)
    unknown = [c for c in header if c not in allowed]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing and (unknown or not columns & set(RUN_FIELDS)):
        raise CsvFormatError(
            "the header is not a fedopt run CSV (needs " + ", ".join(REQUIRED_COLUMNS) + " plus any run fields) "
            "nor Lambda's benchmark table (needs " + ", ".join(LAMBDA_BENCHMARK_COLUMNS) + ") "
            "nor the LLM runs table (needs " + ", ".join(LLM_RUNS_COLUMNS) + "); "
            f"found: {', '.join(header[:12])}{' …' if len(header) > 12 else ''}"
        )
    if missing:
        raise CsvFormatError(f"the header lacks required column(s) {', '.join(missing)}")
    if unknown:
        raise CsvFormatError(
            f"unknown column(s) {', '.join(unknown)}; a run CSV holds only run fields ({', '.join(RUN_FIELDS)}) "
            f"and {', '.join(META_FIELDS)}"
        )
    return FORMAT_RUNS, [c for c in header if c not in IGNORED_IMPORT_COLUMNS]


def _unneutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """Undo ``csvfiles.neutralise_formulas`` ("'=x" -> "=x"), so an exported file imports as itself.

    Formula-looking run fields are then refused by the import as usual; notes keep their text.
    """
    out = frame.copy()
    for name in out.columns:
        quoted = out[name].str.startswith("'").fillna(False).to_numpy(bool)
        if quoted.any():
            out.loc[quoted, name] = out.loc[quoted, name].str.replace(r"^'(?=[=+\-@\t\r])", "", regex=True)
    return out


#: Lambda benchmark column -> run field (the documented mapping; constants below).
def _map_lambda_benchmark(raw: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``gpu_benchmarks.csv`` as runs (the mapping's one home is fedopt_core.datasets)."""
    mapped = lambda_benchmark_runs(raw)
    return mapped[[name for name in RUN_FIELDS if name in mapped.columns]]


def export_csv(path: str | os.PathLike[str] | None = None, *, session: Session | None = None, **filters: Any) -> str:
    """The runs (all, or those matching :func:`list_runs` filters) as CSV text, formulas neutralised.

    Written to ``path`` too when given.  The file can be imported again (it adds nothing).
    """
    frame = list_runs(session=session, **filters)
    frame = frame.sort_values("id")[EXPORT_COLUMNS]
    return to_safe_csv(frame, path)


def template_csv() -> str:
    """An empty run CSV with every field in the header, for people filling one by hand."""
    return ",".join([*RUN_FIELDS, *META_FIELDS]) + "\n"
