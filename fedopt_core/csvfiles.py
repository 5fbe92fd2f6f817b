"""Reading and writing CSV files safely: line numbers for errors, no spreadsheet formulas.

One home for CSV handling, used by the shipped catalogues, run imports and every export.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

#: Leading characters that make Excel, LibreOffice or Sheets evaluate a cell as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class CatalogError:
    """A row of a file that could not be used: where it is and why."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}, line {self.line}: {self.message}"


class CsvFormatError(ValueError):
    """The file as a whole cannot be read as CSV (empty, binary, wrong header)."""


def read_commented_csv(path: str | Path, required: Iterable[str] = ()) -> tuple[pd.DataFrame, list[CatalogError]]:
    """Read a CSV whose first lines may be ``#`` comments; keep each row's true line number.

    Returns the rows as strings (column ``_line`` holds the line number) and the errors for
    rows with the wrong number of fields or an empty required field; those rows are left out.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    skipped = 0
    while skipped < len(lines) and (lines[skipped].startswith("#") or not lines[skipped].strip()):
        skipped += 1
    reader = csv.reader(io.StringIO("".join(lines[skipped:])))
    errors: list[CatalogError] = []
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise CsvFormatError(f"{path}: no header row") from None
    required = list(required)
    missing = [name for name in required if name not in header]
    if missing:
        raise CsvFormatError(f"{path}: header lacks column(s) {', '.join(missing)}")
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(CatalogError(str(path), skipped + reader.line_num, f"unreadable CSV: {exc}"))
            continue
        line = skipped + reader.line_num
        if not record or all(not cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            errors.append(CatalogError(str(path), line, f"expected {len(header)} fields, found {len(record)}"))
            continue
        empty = [name for name in required if not record[header.index(name)].strip()]
        if empty:
            errors.append(CatalogError(str(path), line, f"empty required field(s): {', '.join(empty)}"))
            continue
        rows.append([cell.strip() for cell in record])
        line_numbers.append(line)
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    frame["_line"] = line_numbers
    return frame, errors


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells cannot run as spreadsheet formulas (OWASP CSV injection advice).

    A cell starting with ``= + - @`` or a tab is prefixed with a single quote.  Numbers are
    left alone (a negative number is data, not a formula).
    """
    out = frame.copy()
    for name in out.columns:
        col = out[name]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            continue
        text = col.astype(object)
        is_text = text.map(lambda v: isinstance(v, str))
        risky = is_text & text.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_PREFIXES))
        out[name] = text.where(~risky, "'" + text.astype(str))
    return out


def to_safe_csv(frame: pd.DataFrame, path: str | Path | None = None) -> str:
    """Write ``frame`` as CSV with formulas neutralised; returns the text (and writes ``path``)."""
    text = neutralise_formulas(frame).to_csv(index=False)
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
