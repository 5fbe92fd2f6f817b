"""CSV handling: true line numbers for bad rows, formulas neutralised on export."""

from __future__ import annotations

import pandas as pd
import pytest

from fedopt_core import csvfiles


def test_comment_lines_are_skipped_and_line_numbers_are_true(tmp_path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("# source: test\n# as of 2026-11-29\nname,value\na,1\nb,2,extra\nc,\nd,4\n", encoding="utf-8")
    frame, errors = csvfiles.read_table(path, required=["name", "value"])
    assert frame["name"].tolist() == ["a", "d"]
    assert frame["_line"].tolist() == [4, 7]
    assert [(e.line, "expected 2 fields" in e.message or "empty required" in e.message) for e in errors] == [
        (5, True),
        (6, True),
    ]
    assert str(errors[0]).startswith(f"{path}, line 5:")


def test_a_file_without_the_required_header_is_refused(tmp_path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("foo,bar\n1,2\n", encoding="utf-8")
    with pytest.raises(csvfiles.CsvFormatError, match="lacks column"):
        csvfiles.read_table(path, required=["name"])


def test_export_neutralises_formulas_but_not_numbers() -> None:
    frame = pd.DataFrame({"note": ["=cmd|' /C calc'!A0", "+1+1", "@SUM(A1)", "plain", "-x"], "n": [-1.5, 2, 3, 4, 5]})
    text = csvfiles.to_safe_csv(frame)
    back = pd.read_csv(pd.io.common.StringIO(text))
    assert back["note"].tolist() == ["'=cmd|' /C calc'!A0", "'+1+1", "'@SUM(A1)", "plain", "'-x"]
    assert back["n"].tolist() == [-1.5, 2, 3, 4, 5]


def test_an_unreadable_row_is_reported_with_its_line_and_the_rows_after_it_are_still_read(tmp_path) -> None:
    path = tmp_path / "c.csv"
    # A field beyond the CSV reader's limit (128 KiB) on line 3: that line is left out, line 4 read.
    path.write_text("name,value\na,1\nb," + "x" * 200_000 + "\nc,3\n", encoding="utf-8")
    items = list(csvfiles.records(csvfiles.read_text(path)))
    assert items[0] == (2, ["a", "1"]) and items[2] == (4, ["c", "3"]) and len(items) == 3
    problem = items[1]
    assert isinstance(problem, csvfiles.Problem) and problem.line == 3
    assert "this line was left out" in problem.message


def test_a_quote_never_closed_does_not_swallow_the_lines_after_it(tmp_path) -> None:
    path = tmp_path / "q.csv"
    good = "".join(f"r{i},{i}\n" for i in range(50))
    path.write_text('name,value\na,1\nb,"never closed\n' + good, encoding="utf-8")
    items = list(csvfiles.records(csvfiles.read_text(path)))
    problems = [i for i in items if isinstance(i, csvfiles.Problem)]
    assert [p.line for p in problems] == [3] and "cannot be read as CSV" in problems[0].message
    rows = [i for i in items if not isinstance(i, csvfiles.Problem)]
    assert rows[0] == (2, ["a", "1"]) and len(rows) == 51 and rows[-1] == (53, ["r49", "49"])


def test_a_multi_line_quoted_field_is_still_one_record(tmp_path) -> None:
    path = tmp_path / "m.csv"
    path.write_text('name,value\na,"two\nlines"\nb,2\n', encoding="utf-8")
    assert list(csvfiles.records(csvfiles.read_text(path))) == [(2, ["a", "two\nlines"]), (4, ["b", "2"])]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"PK\x03\x04binary", "binary file"),
        (b"a;b;c\n1;2;3\n", "separated by semicolons"),
        (b"a,b,a\n1,2,3\n", "repeats column"),
        (b"# only a comment\n\n", "no header row"),
        (b"", "empty"),
    ],
)
def test_a_file_that_cannot_be_csv_is_refused_with_the_reason(content: bytes, message: str) -> None:
    with pytest.raises(csvfiles.CsvFormatError, match=message):
        csvfiles.read_text(content)


def test_windows_1252_text_is_read_with_a_warning_naming_the_line() -> None:
    text = csvfiles.read_text("name,value\nZürich,1\n".encode("cp1252"))
    assert list(csvfiles.records(text)) == [(2, ["Zürich", "1"])]
    assert "line 2" in text.warnings[0] and "Windows-1252" in text.warnings[0]


def test_typed_turns_numeric_columns_into_numbers_and_blanks_into_missing(tmp_path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("name,count,note\na,1,\nb,2.5,x\n", encoding="utf-8")
    frame, _ = csvfiles.read_table(path)
    typed = csvfiles.typed(frame.drop(columns="_line"))
    assert typed["count"].tolist() == [1.0, 2.5] and typed["name"].tolist() == ["a", "b"]
    assert typed["note"].isna().tolist() == [True, False]
