"""CSV handling: true line numbers for bad rows, formulas neutralised on export."""

from __future__ import annotations

import pandas as pd
import pytest

from fedopt_core import csvfiles


def test_comment_lines_are_skipped_and_line_numbers_are_true(tmp_path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("# source: test\n# as of 2026-11-29\nname,value\na,1\nb,2,extra\nc,\nd,4\n", encoding="utf-8")
    frame, errors = csvfiles.read_commented_csv(path, required=["name", "value"])
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
        csvfiles.read_commented_csv(path, required=["name"])


def test_export_neutralises_formulas_but_not_numbers() -> None:
    frame = pd.DataFrame({"note": ["=cmd|' /C calc'!A0", "+1+1", "@SUM(A1)", "plain", "-x"], "n": [-1.5, 2, 3, 4, 5]})
    text = csvfiles.to_safe_csv(frame)
    back = pd.read_csv(pd.io.common.StringIO(text))
    assert back["note"].tolist() == ["'=cmd|' /C calc'!A0", "'+1+1", "'@SUM(A1)", "plain", "'-x"]
    assert back["n"].tolist() == [-1.5, 2, 3, 4, 5]
