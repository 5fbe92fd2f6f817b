"""CSV files in and out, in one place: reading with true line numbers, writing without formulas.

Every CSV fedopt reads goes through :func:`read_text` (bytes to text and a header) and
:func:`records` (the rows with their 1-based file line): the run import streams them, and
:func:`read_table` gathers them into a frame for the shipped catalogues and the public data sets.
The rules, here once:

* a size limit is checked before reading (when the caller gives one);
* text is UTF-8 (a BOM is dropped); a file that is not is read as Windows-1252 (what Excel on
  Windows writes) with a warning naming the first line that was not UTF-8; a zip signature (an
  Excel workbook) or many NUL bytes (UTF-16, binary) are refused; a line with a stray NUL is a bad row;
* leading blank and ``#`` lines are skipped; the header is the first other line; only
  comma-separated files are read (a semicolon/tab/pipe header is refused, naming the separator);
  a header that repeats a column is refused;
* a row with the wrong number of fields is reported with its line and left out; so is a row the
  CSV reader cannot parse (a quote never closed, a field past its size limit), and reading goes
  on at the next line.

Writing: :func:`to_safe_csv` neutralises cells a spreadsheet would evaluate as a formula.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pandas as pd

#: Leading characters that make Excel, LibreOffice or Sheets evaluate a cell as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

Source = str | os.PathLike[str] | bytes | IO[bytes]


@dataclass(frozen=True)
class CatalogError:
    """A row of a file that could not be used: where it is and why."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}, line {self.line}: {self.message}"


class CsvFormatError(ValueError):
    """The file as a whole cannot be read as CSV (empty, binary, too large, wrong separator or header)."""


@dataclass(frozen=True)
class CsvText:
    """A CSV file read as text: its header and the text from the header line on."""

    name: str
    header: list[str]
    #: 1-based line of the header in the file.
    header_line: int
    #: Physical lines after the header (for progress).
    data_lines: int
    body: str
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Problem:
    """A record that was not read: its 1-based line and why."""

    line: int
    message: str


def _name(source: Source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return str(getattr(source, "name", None) or "the file")


def read_bytes(source: Source, max_bytes: int | None = None) -> bytes:
    """The bytes of a path, a bytes object or a binary file object; refused above ``max_bytes``."""
    limit_text = f"{max_bytes / 1024 / 1024:.0f} MiB" if max_bytes else ""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise CsvFormatError(
                f"{path.name} is {size / 1024 / 1024:.1f} MiB; the import limit is {limit_text}. "
                "Split the file and import the parts."
            )
        with path.open("rb") as handle:
            data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    else:
        size = getattr(source, "size", None)
        if max_bytes is not None and isinstance(size, int) and size > max_bytes:
            raise CsvFormatError(
                f"the file is {size / 1024 / 1024:.1f} MiB; the import limit is {limit_text}. Split it."
            )
        data = source.read() if max_bytes is None else source.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise CsvFormatError(
            f"the file is larger than the import limit of {limit_text}. Split it and import the parts."
        )
    if not data.strip():
        raise CsvFormatError("the file is empty")
    return data


def decode(data: bytes) -> tuple[str, list[str]]:
    """CSV bytes as text, with the warnings a person should see (Windows-1252 fallback)."""
    head = data[:1_000_000]
    # A workbook, or text in UTF-16 (a NUL beside every ASCII character), is not CSV text.  A stray
    # NUL in a text file is one bad row: the reader refuses that line and reads on.
    if data.startswith(b"PK\x03\x04") or head.count(b"\x00") > max(16, len(head) // 100):
        raise CsvFormatError("this is a binary file (an Excel workbook?), not CSV text; save it as CSV (UTF-8)")
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        raise CsvFormatError(
            f"line {line}: the file is not UTF-8 text (nor Windows-1252); save it as CSV UTF-8"
        ) from None
    return text, [
        f"the file is not UTF-8 (first at line {line}); it was read as Windows-1252. "
        "Check names with accents, or save it as CSV UTF-8."
    ]


def read_text(source: Source, *, max_bytes: int | None = None) -> CsvText:
    """Read ``source`` as CSV text and parse its header (see the module docstring for the rules).

    Raises :class:`CsvFormatError` when the file as a whole cannot be used, ``FileNotFoundError``
    for a path that does not exist.
    """
    text, warnings = decode(read_bytes(source, max_bytes))
    pos = 0
    skipped = 0
    while pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end == -1 else end + 1
        line = text[pos:end]
        if line.strip() and not line.lstrip().startswith("#"):
            break
        skipped += 1
        pos = end
    body = text[pos:]
    if not body.strip():
        raise CsvFormatError("the file has no header row (it is empty or only comments)")
    header_text = body.split("\n", 1)[0]
    try:
        raw_header = next(csv.reader(io.StringIO(header_text)))
    except (StopIteration, csv.Error) as exc:
        raise CsvFormatError(f"line {skipped + 1}: the header cannot be read as CSV ({exc})") from None
    header = [h.strip().lstrip("\ufeff") for h in raw_header]
    if len(header) == 1:
        for sep, sep_name in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
            if sep in header_text:
                raise CsvFormatError(
                    f"line {skipped + 1}: the file is separated by {sep_name}; fedopt reads "
                    "comma-separated files (save as 'CSV (comma delimited)')"
                )
    lowered = [h.lower() for h in header]
    duplicated = sorted({h for h in lowered if lowered.count(h) > 1})
    if duplicated:
        raise CsvFormatError(f"line {skipped + 1}: the header repeats column(s) {', '.join(duplicated)}")
    data_lines = body.count("\n") - (0 if body.endswith("\n") else -1) - 1
    return CsvText(_name(source), header, skipped + 1, max(0, data_lines), body, warnings)


_PHYSICAL_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def records(text: CsvText) -> Iterator[tuple[int, list[str]] | Problem]:
    """Each data record as ``(line, cells)``, or a :class:`Problem` for one that cannot be used.

    Blank records are skipped.  A record with the wrong number of fields is a problem and reading
    goes on.  So is one the CSV reader cannot parse (a quote never closed, which would otherwise
    swallow every later line into one field; a field past the reader's size limit): that line is
    left out, and reading starts again on the next line, so the good rows after it still count.
    """
    body_lines = _PHYSICAL_LINE.findall(text.body)
    reader = csv.reader(io.StringIO(text.body, newline=""), strict=True)
    next(reader)  # the header, parsed by read_text
    before = text.header_line - 1  # lines before the header
    base = 0  # body lines before the text the current reader reads
    consumed = reader.line_num  # body lines read so far
    width = len(text.header)
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            bad = consumed + 1  # the body line the unreadable record starts on
            yield Problem(before + bad, f"cannot be read as CSV ({exc}); this line was left out, the next ones read")
            if bad >= len(body_lines):
                return
            base = consumed = bad
            reader = csv.reader(io.StringIO("".join(body_lines[base:]), newline=""), strict=True)
            continue
        start_line = before + consumed + 1
        consumed = base + reader.line_num
        if not record or all(not cell.strip() for cell in record):
            continue
        if len(record) != width:
            yield Problem(start_line, f"expected {width} fields, found {len(record)}")
            continue
        yield start_line, record


def read_table(
    source: Source, required: Iterable[str] = (), *, max_bytes: int | None = None
) -> tuple[pd.DataFrame, list[CatalogError]]:
    """A whole CSV file as strings (stripped), with each row's file line in column ``_line``.

    Rows with a problem (see :func:`records`) or an empty ``required`` field are left out and
    reported, each with its file and line.  A header without a ``required`` column raises
    :class:`CsvFormatError`.  For the shipped catalogues and the public data sets.
    """
    text = read_text(source, max_bytes=max_bytes)
    required = list(required)
    missing = [name for name in required if name not in text.header]
    if missing:
        raise CsvFormatError(f"{text.name}: header lacks column(s) {', '.join(missing)}")
    positions = [text.header.index(name) for name in required]
    errors: list[CatalogError] = []
    rows: list[list[str]] = []
    lines: list[int] = []
    for item in records(text):
        if isinstance(item, Problem):
            errors.append(CatalogError(text.name, item.line, item.message))
            continue
        line, record = item
        empty = [name for name, pos in zip(required, positions, strict=True) if not record[pos].strip()]
        if empty:
            errors.append(CatalogError(text.name, line, f"empty required field(s): {', '.join(empty)}"))
            continue
        rows.append([cell.strip() for cell in record])
        lines.append(line)
    frame = pd.DataFrame(rows, columns=text.header, dtype=object)
    frame["_line"] = lines
    return frame, errors


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """A :func:`read_table` frame with blank cells as missing and every all-numeric column as numbers."""
    out = frame.replace("", None).infer_objects()
    for name in out.columns:
        values = out[name]
        numbers = pd.to_numeric(values, errors="coerce")
        if values.notna().any() and numbers[values.notna()].notna().all():
            out[name] = numbers
    return out


def count_rows(text: str) -> int:
    """Data rows in CSV ``text`` (its records after the header)."""
    return max(0, sum(1 for _ in csv.reader(io.StringIO(text, newline=""))) - 1)


# --------------------------------------------------------------------------- writing


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
