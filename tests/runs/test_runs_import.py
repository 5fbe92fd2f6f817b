"""CSV import of runs: both formats, every kind of bad input, and all-or-nothing batches."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from fedopt_core import db, runs
from fedopt_core.cli import main as cli_main
from fedopt_core.csvfiles import CsvFormatError
from fedopt_core.runs import store

HEADER = "workload,gpu_type,gpu_count,execution_time_s,started_at,notes\n"


def count(url: str) -> int:
    with db.get_engine(url).connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM run")).scalar())


def stored(url: str) -> pd.DataFrame:
    with db.get_engine(url).connect() as conn:
        return pd.read_sql(text("SELECT * FROM run ORDER BY id"), conn)


def generated_csv(path: Path, n: int, seed: int = 0) -> Path:
    """n distinct valid runs in our own format."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "task_type": "training",
            "workload": rng.choice(["resnet50", "bert_large_squad", "gnmt", "ncf"], n),
            "precision": rng.choice(["fp16_amp", "fp32"], n),
            "batch_size": rng.choice([64, 128, 256], n),
            "gpu_type": rng.choice(["H100 SXM5", "A100 SXM4 80GB", "A10"], n),
            "gpu_count": rng.choice([1, 2, 4, 8], n),
            "price_per_hour_usd": rng.uniform(0.5, 30, n).round(2),
            "execution_time_s": np.arange(1, n + 1) + 0.5,  # distinct, so every row is a new run
        }
    )
    frame.to_csv(path, index=False)
    return path


# --------------------------------------------------------------------------- our own format


def test_run_csv_imports_good_rows_and_reports_bad_ones_by_line(empty_db: str, tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    path.write_text(
        "# exported from the lab notebook\n"
        + HEADER
        + "resnet50,H100 SXM5,8,3600,2025-01-01T10:00:00Z,ok\n"  # line 3
        + "bert,A100,1,-5,,negative time\n"  # line 4
        + 'gnmt,A10,2,120,,"a note\nover two lines"\n'  # lines 5-6
        + "ncf,A10,two,50,,\n"  # line 7
        + "\n"  # line 8 (blank)
        + "ssd,A10,1,50\n"  # line 9: too few fields
        + "=cmd|' /C calc'!A0,A10,1,50,,\n"  # line 10: a formula
        + "waveglow,A10,1,70,last tuesday,\n",  # line 11: bad start time
        encoding="utf-8",
    )
    result = runs.import_csv(path)
    assert result.format == runs.FORMAT_RUNS
    assert (result.rows, result.inserted, result.duplicates, result.refused) == (7, 2, 0, 5)
    assert [(e.line, e.field) for e in result.errors] == [
        (4, "execution_time_s"),
        (7, "gpu_count"),
        (9, "row"),
        (10, "workload"),
        (11, "started_at"),
    ]
    reasons = {e.line: e.message for e in result.errors}
    assert "greater than zero" in reasons[4] and "not a number" in reasons[7]
    assert "expected 6 fields, found 4" in reasons[9] and "formula" in reasons[10]
    table = stored(empty_db)
    assert table["workload"].tolist() == ["resnet50", "gnmt"]
    assert table["notes"].tolist() == ["ok", "a note\nover two lines"]
    assert set(table["source"]) == {"csv"}

    again = runs.import_csv(path)
    assert (again.inserted, again.duplicates, again.refused) == (0, 2, 5)
    assert count(empty_db) == 2


def test_every_refused_row_is_listed(empty_db: str, tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    path.write_text(HEADER + "a,A10,1,0,,\n" * 3 + "b,A10,1,1,,\n", encoding="utf-8")
    result = runs.import_csv(path)
    assert [e.line for e in result.errors] == [2, 3, 4] and result.inserted == 1


def test_header_case_and_exported_bookkeeping_columns_are_accepted(empty_db: str) -> None:
    data = b"ID,Run_Key,GPU_Type,gpu_count,Execution_Time_S,source,created_at\n7,abc,A10,1,12.5,track,2024-01-01\n"
    result = runs.import_csv(data)
    assert result.inserted == 1
    row = stored(empty_db).iloc[0]
    assert (row["gpu_type"], row["execution_time_s"], row["source"]) == ("A10", 12.5, "csv")
    assert row["id"] == 1 and row["run_key"] != "abc"  # the database's own, not the file's


def test_a_benchmark_row_with_text_for_a_number_is_reported_as_such(empty_db: str, shared_data: Path) -> None:
    lines = (shared_data / "gpu_benchmarks.csv").read_text(encoding="utf-8").splitlines()[:4]
    header = lines[0].split(",")
    bad = next(csv.reader([lines[2]]))
    bad[header.index("time_per_1M_units_s")] = "fast"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(
        [header, next(csv.reader([lines[1]])), bad, next(csv.reader([lines[3]]))]
    )
    result = runs.import_csv(buffer.getvalue().encode())
    assert result.format == "lambda_benchmark" and result.inserted == 2
    assert [(e.line, e.field, e.message) for e in result.errors] == [(3, "execution_time_s", "is not a number")]


# --------------------------------------------------------------------------- the public benchmark


def test_the_real_benchmark_file_imports_every_valid_row_once(
    empty_db: str, shared_data: Path, capsys: pytest.CaptureFixture
) -> None:
    path = shared_data / "gpu_benchmarks.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        source_rows = list(csv.DictReader(handle))
    code = cli_main(["runs", "import", str(path), "--json"])
    first = json.loads(capsys.readouterr().out)
    assert first["format"] == "lambda_benchmark"
    assert first["rows"] == len(source_rows)
    assert first["inserted"] + first["refused"] == len(source_rows) and first["inserted"] > 0
    assert code == (0 if first["refused"] == 0 else 4)
    assert count(empty_db) == first["inserted"]
    print(
        f"gpu_benchmarks.csv: {first['inserted']} imported, {first['refused']} refused: {first['errors'][:5]}",
        file=sys.stderr,
    )

    table = stored(empty_db)
    assert set(table["source"]) == {"benchmark"} and set(table["task_type"]) == {"training"}
    assert (table["work_units"] == 1e6).all()
    sample = source_rows[100]
    match = table[
        (table["platform"] == sample["system_name"])
        & (table["workload"] == sample["model"])
        & (table["precision"] == sample["precision"])
        & (table["software"] == sample["table_version"])
    ]
    assert len(match) == 1
    assert match["execution_time_s"].iloc[0] == pytest.approx(float(sample["time_per_1M_units_s"]))
    assert match["gpu_type"].iloc[0] == sample["gpu_name"] and match["gpu_count"].iloc[0] == int(sample["gpu_count"])

    assert cli_main(["runs", "import", str(path), "--json"]) == code
    second = json.loads(capsys.readouterr().out)
    assert second["inserted"] == 0 and second["duplicates"] == first["inserted"]
    assert count(empty_db) == first["inserted"]


# --------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty"),
        (b"\n\n  \n", "empty"),
        (b"# only a comment\n", "no header"),
        (b"name,gpu,seconds\nx,A10,5\n", "not a fedopt run CSV"),
        (b"workload,gpu_type,gpu_count\nx,A10,1\n", "lacks required column(s) execution_time_s"),
        (b"gpu_type,gpu_count,execution_time_s,gpu_memroy_gb\nA10,1,5,24\n", "unknown column(s) gpu_memroy_gb"),
        (b"gpu_type;gpu_count;execution_time_s\nA10;1;5\n", "semicolons"),
        (b"gpu_type\tgpu_count\texecution_time_s\nA10\t1\t5\n", "tabs"),
        (b"gpu_type,gpu_count,gpu_type,execution_time_s\nA10,1,A10,5\n", "repeats column(s) gpu_type"),
        (b"PK\x03\x04\x14\x00\x06\x00binary", "binary"),
        ("gpu_type,gpu_count,execution_time_s\nA10,1,5\n".encode("utf-16-le"), "binary"),  # NUL beside every letter
        (b"gpu_type,gpu_count,execution_time_s\nA10,1,5\nA\x81,1,5\n", "line 3: the file is not UTF-8"),
    ],
)
def test_unusable_files_are_refused_with_a_clear_message(empty_db: str, content: bytes, words: str) -> None:
    with pytest.raises(CsvFormatError) as info:
        runs.import_csv(content)
    assert words in str(info.value)
    assert count(empty_db) == 0


def test_a_windows_1252_file_is_read_with_a_warning(empty_db: str) -> None:
    content = "gpu_type,gpu_count,execution_time_s,logged_by\nA10,1,5,ok\nA10,1,6,Müller\n".encode("cp1252")
    result = runs.import_csv(content)
    assert result.inserted == 2
    assert any("Windows-1252" in w and "line 3" in w for w in result.warnings)
    assert stored(empty_db)["logged_by"].tolist() == ["ok", "Müller"]


def test_a_huge_file_is_refused_before_it_is_read(empty_db: str, tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as handle:
        handle.write(HEADER.encode())
        handle.truncate(200 * 1024 * 1024)  # sparse: 200 MB on paper, nothing on disk
    with pytest.raises(CsvFormatError, match=r"200\.0 MiB; the import limit is 50 MiB"):
        runs.import_csv(path)

    class Upload(io.BytesIO):
        size = 200 * 1024 * 1024

        def read(self, *args):
            raise AssertionError("the import read a file it should have refused")

    with pytest.raises(CsvFormatError, match="limit"):
        runs.import_csv(Upload())
    with pytest.raises(CsvFormatError, match="limit"):
        runs.import_csv((HEADER + "a,A10,1,5,,\n" * 100).encode(), max_bytes=1000)
    assert count(empty_db) == 0


def test_header_only_imports_nothing_and_says_so(empty_db: str) -> None:
    result = runs.import_csv(HEADER.encode())
    assert result.rows == 0 and result.inserted == 0 and "no data rows" in result.warnings[0]


def test_an_unreadable_row_is_refused_with_its_line_and_the_rows_after_it_import(empty_db: str) -> None:
    big = "x" * 200_000  # longer than the csv module's field limit
    content = (HEADER + "a,A10,1,5,,\n" + f'b,A10,1,6,,"{big}\nc,A10,1,7,,\n').encode()
    result = runs.import_csv(content)
    assert result.inserted == 2 and result.errors[0].line == 3 and "cannot be read as CSV" in result.errors[0].message


def test_an_unclosed_quote_on_line_2_loses_only_line_2(empty_db: str) -> None:
    good = "".join(f"w{i},A10,1,{5 + i},,\n" for i in range(50))
    result = runs.import_csv((HEADER + 'bad,A10,1,5,,"unclosed\n' + good).encode())
    assert result.inserted == 50 and result.refused == 1
    assert [e.line for e in result.errors] == [2] and "cannot be read as CSV" in result.errors[0].message


def test_cli_import_reports_a_bad_file_in_one_line(
    empty_db: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "semi.csv"
    path.write_bytes(b"gpu_type;gpu_count;execution_time_s\nA10;1;5\n")
    assert cli_main(["runs", "import", str(path)]) == 1
    err = capsys.readouterr().err
    assert "semi.csv: not imported" in err and "semicolons" in err and len(err.strip().splitlines()) == 1
    assert cli_main(["runs", "import", str(tmp_path / "missing.csv")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_cli_import_lists_refused_rows_and_exits_4(
    empty_db: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "runs.csv"
    path.write_text(HEADER + "a,A10,1,5,,\nb,A10,1,-1,,\n", encoding="utf-8")
    assert cli_main(["runs", "import", str(path)]) == 4
    captured = capsys.readouterr()
    assert "1 imported" in captured.out and "refused: line 3: execution_time_s" in captured.err
    assert count(empty_db) == 1


# --------------------------------------------------------------------------- batches and progress


def test_progress_is_reported_per_batch(empty_db: str, tmp_path: Path) -> None:
    path = generated_csv(tmp_path / "runs.csv", 250)
    calls: list[tuple[int, int]] = []
    result = runs.import_csv(path, batch_size=100, progress=lambda done, total: calls.append((done, total)))
    assert result.inserted == 250
    assert [c[1] for c in calls] == [250] * len(calls)
    dones = [c[0] for c in calls]
    assert dones == sorted(dones) and dones[-1] == 250 and len(calls) >= 3


def test_a_failure_inside_a_batch_rolls_that_batch_back(
    empty_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = generated_csv(tmp_path / "runs.csv", 25)
    real = store._link_predictions
    calls = {"n": 0}

    def failing_second_time(conn, new):
        calls["n"] += 1
        if calls["n"] == 2:  # after batch 2's rows were inserted, inside its transaction
            raise RuntimeError("disk on fire")
        return real(conn, new)

    monkeypatch.setattr(store, "_link_predictions", failing_second_time)
    with pytest.raises(runs.ImportAborted, match="disk on fire") as info:
        runs.import_csv(path, batch_size=10)
    assert info.value.partial.inserted == 10
    assert count(empty_db) == 10

    monkeypatch.setattr(store, "_link_predictions", real)
    result = runs.import_csv(path, batch_size=10)
    assert (result.inserted, result.duplicates) == (15, 10) and count(empty_db) == 25


def test_killing_an_import_leaves_whole_batches(empty_db: str, tmp_path: Path) -> None:
    n, batch = 10_000, 250
    path = generated_csv(tmp_path / "big.csv", n)
    database = empty_db.removeprefix("sqlite:///")
    env = os.environ | {"DATABASE_URL": empty_db}
    process = subprocess.Popen(
        [sys.executable, "-m", "fedopt_core.cli", "runs", "import", str(path), "--batch-size", str(batch)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    seen = 0
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as conn:
                seen = conn.execute("SELECT count(*) FROM run").fetchone()[0]
            if seen > 0:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()

    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        after = conn.execute("SELECT count(*) FROM run").fetchone()[0]
        incomplete = conn.execute(
            "SELECT count(*) FROM run WHERE run_key IS NULL OR gpu_type IS NULL "
            "OR execution_time_s IS NULL OR source IS NULL"
        ).fetchone()[0]
    assert 0 < after < n, "the import finished before it could be killed"
    assert after % batch == 0 and incomplete == 0
    with sqlite3.connect(database) as conn:  # every stored batch has its audit row, killed or not
        audited = conn.execute("SELECT details FROM audit_event WHERE action = 'runs.import'").fetchall()
    assert sum(json.loads(d)["inserted"] for (d,) in audited) == after and len(audited) == after // batch

    result = runs.import_csv(path, batch_size=5000)
    assert (result.inserted, result.duplicates) == (n - after, after)
    assert count(empty_db) == n


def test_a_benchmark_like_table_without_its_version_column_is_one_clear_refusal(
    loaded_db: str, shared_data, tmp_path
) -> None:
    with open(shared_data / "gpu_benchmarks.csv", newline="", encoding="utf-8") as source:
        rows = [row for _, row in zip(range(4), csv.reader(source), strict=False)]
    drop = rows[0].index("table_version")
    path = tmp_path / "bench.csv"
    with open(path, "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows([[c for i, c in enumerate(row) if i != drop] for row in rows])
    with pytest.raises(CsvFormatError, match="table_version"):  # the page's "Not imported" line, not a traceback
        runs.import_csv(path)


def test_a_stray_nul_or_control_character_refuses_its_row_and_keeps_the_others(empty_db: str) -> None:
    rows = [
        "ok1,A10,1,5,,",
        "nul\x00,A10,1,6,,",  # line 3: a NUL
        "esc\x1b[31m,A10,1,7,,",  # line 4: a terminal escape
        "bell\x07,A10,1,8,,",
        "rtl\u202egnp.exe,A10,1,9,,",  # a right-to-left override
        "x" * 100_000 + ",A10,1,10,,",  # line 7: a 100,000-character name
        'ok2,A10,1,11,,"a note\non two lines"',
    ]
    result = runs.import_csv((HEADER + "\n".join(rows) + "\n").encode())
    assert result.inserted == 2
    refused = {e.line: e for e in result.errors}
    assert set(refused) == {3, 4, 5, 6, 7}
    assert all(refused[line].field == "workload" for line in (4, 5, 6, 7))
    assert "control characters" in refused[4].message and "longer than" in refused[7].message
    stored = runs.list_runs()
    assert sorted(stored["workload"]) == ["ok1", "ok2"] and "a note\non two lines" in stored["notes"].tolist()
