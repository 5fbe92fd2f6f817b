"""Many writers at once: 4 processes x 4 threads, on SQLite and PostgreSQL (issue 7).

Each worker process is a fresh interpreter (``spawn``) pointed at the test's database through
``DATABASE_URL``/``FEDOPT_HOME``, calling the real core functions, as separate dashboard or CLI
processes would.  All 16 threads start on one barrier.  What the workers were told to write is
derived from their index alone, so the parent checks the database against the plan, not against
what the workers say they did.

Every wait is bounded: a hung worker fails the test instead of blocking CI.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import queue
import random
import threading
import time
import traceback
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy.engine import make_url

from fedopt_core import accounts, db, runs

PROCESSES = 4
THREADS_PER_PROCESS = 4
WORKERS = PROCESSES * THREADS_PER_PROCESS
SESSIONS_PER_WORKER = 25
RUNS_PER_WORKER = 10
SHARED_ROWS = 200
OWN_ROWS = 5
ACCOUNTS = ("grant-a", "grant-b", "grant-c")
MONTH = "2026-10"
MONTH_START = datetime(2026, 10, 1, tzinfo=UTC)
PRICE_PER_HOUR_USD = 2.0
#: Small batches (8 transactions per import of the shared file), so the 16 racing imports interleave.
SHARED_BATCH_SIZE = 25
#: Rounds of the identical-run race (each round: all 16 workers log the same run).
SAME_RUN_ROUNDS = 3

# Spawning 4 interpreters that import pandas takes a while on a loaded 2-core box; the barrier
# waits for the slowest.  The deadline covers the whole workload.
BARRIER_TIMEOUT_S = 120.0
DEADLINE_S = 240.0


# --------------------------------------------------------------------------- the plan (shared by parent and workers)


def _session_plan(worker: int) -> list[dict[str, Any]]:
    """The usage sessions a worker records: spread over the accounts, hours in quarters (exact sums)."""
    plan = []
    for i in range(SESSIONS_PER_WORKER):
        serial = worker * SESSIONS_PER_WORKER + i
        plan.append(
            {
                "username": ACCOUNTS[serial % len(ACCOUNTS)],
                "started_at": MONTH_START + timedelta(days=serial % 27, minutes=serial),
                "hours": 0.25 * (1 + serial % 8),
                "person": f"w{worker}",
                "notes": f"session {worker}-{i}",
            }
        )
    return plan


def _logged_run(worker: int, i: int) -> dict[str, Any]:
    return {
        "workload": "logged",
        "gpu_type": "A100",
        "gpu_count": 1 + i % 4,
        "platform": "gpu_1x_a100",
        "provider": "lambda",
        "execution_time_s": 60.0 + i,
        "success": True,
        "started_at": MONTH_START + timedelta(hours=worker, minutes=i),
        "notes": f"logged {worker}-{i}",
    }


def _csv_row(workload: str, n: int, note: str) -> dict[str, Any]:
    return {
        "workload": workload,
        "gpu_type": "H100",
        "gpu_count": 1 + n % 8,
        "platform": "gpu_8x_h100",
        "provider": "lambda",
        "execution_time_s": f"{100 + n * 0.5}",
        "success": "true",
        "started_at": (MONTH_START + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "notes": note,
    }


def _shared_rows() -> list[dict[str, Any]]:
    return [_csv_row("shared-import", n, f"shared {n}") for n in range(SHARED_ROWS)]


def _own_rows(worker: int) -> list[dict[str, Any]]:
    return [_csv_row(f"own-{worker}", n, f"own {worker}-{n}") for n in range(OWN_ROWS)]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _same_run(round_no: int) -> dict[str, Any]:
    # No start time: a prediction made before the race may be scored by it.
    return {
        "workload": f"same-{round_no}",
        "gpu_type": "A10",
        "gpu_count": 1,
        "platform": "gpu_1x_a10",
        "provider": "lambda",
        "execution_time_s": 123.5,
        "success": True,
    }


# --------------------------------------------------------------------------- worker side


def _import_summary(result: runs.ImportResult) -> dict[str, Any]:
    return {
        "rows": result.rows,
        "inserted": result.inserted,
        "duplicates": result.duplicates,
        "refused": result.refused,
        "run_ids": list(result.run_ids),
    }


def _mixed_work(worker: int, files: dict[str, str], barrier: Any) -> dict[str, Any]:
    """Shared import first (all 16 race on it), then sessions, runs and the own import shuffled."""
    barrier.wait(BARRIER_TIMEOUT_S)
    out: dict[str, Any] = {"sessions": [], "runs": [], "released_at": time.time()}
    out["shared"] = _import_summary(runs.import_csv(files["shared"], batch_size=SHARED_BATCH_SIZE))
    steps: list[tuple[str, Any]] = [("session", s) for s in _session_plan(worker)]
    steps += [("run", i) for i in range(RUNS_PER_WORKER)]
    steps += [("own", None), ("read", None), ("read", None)]
    random.Random(worker).shuffle(steps)
    for kind, item in steps:
        if kind == "session":
            session_id = accounts.add_usage_session(
                item["username"],
                "gpu_1x_a100",
                item["started_at"],
                hours=item["hours"],
                price_per_hour_usd=PRICE_PER_HOUR_USD,
                person=item["person"],
                notes=item["notes"],
            )
            out["sessions"].append(session_id)
        elif kind == "run":
            logged = runs.log_run(_logged_run(worker, item))
            out["runs"].append((logged.run_id, logged.inserted))
        elif kind == "read":
            # Pages keep reading while others write; a read must not fail or block the writers.
            accounts.usage_stats(ACCOUNTS[worker % len(ACCOUNTS)], MONTH)
            runs.list_runs(limit=20)
        else:
            out["own"] = _import_summary(runs.import_csv(files[f"own-{worker}"]))
    return out


def _same_run_work(worker: int, files: dict[str, str], barrier: Any) -> dict[str, Any]:
    outcomes = []
    released_at = None
    for round_no in range(SAME_RUN_ROUNDS):
        barrier.wait(BARRIER_TIMEOUT_S)
        released_at = released_at or time.time()
        logged = runs.log_run(_same_run(round_no))
        outcomes.append((logged.run_id, logged.inserted, logged.linked_prediction_id))
    return {"same": outcomes, "released_at": released_at}


_WORK = {"mixed": _mixed_work, "same": _same_run_work}


def _process_main(
    kind: str, process_no: int, url: str, home: str, files: dict[str, str], barrier: Any, results: Any
) -> None:
    """One worker process: its own engine (fresh interpreter), THREADS_PER_PROCESS threads."""
    os.environ["DATABASE_URL"] = url
    os.environ["FEDOPT_HOME"] = home
    work = _WORK[kind]

    def thread_main(worker: int) -> None:
        try:
            payload = work(worker, files, barrier)
            payload["finished_at"] = time.time()
            results.put(("ok", worker, payload))
        except BaseException:  # noqa: BLE001 - every failure goes back to the parent
            results.put(("error", worker, traceback.format_exc()))
            barrier.abort()  # the others fail now instead of waiting out the barrier timeout

    threads = [
        threading.Thread(target=thread_main, args=(process_no * THREADS_PER_PROCESS + t,), daemon=True)
        for t in range(THREADS_PER_PROCESS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_S)
    db.dispose_engines()


# --------------------------------------------------------------------------- parent side


def _run_workers(kind: str, url: str, home: Path, files: dict[str, str]) -> tuple[dict[int, Any], str]:
    """Start the processes, collect one message per worker; returns (results by worker, timing text).

    Fails if any worker raised, hung or died."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(WORKERS), context.Queue()
    started = time.monotonic()
    started_wall = time.time()
    processes = [
        context.Process(target=_process_main, args=(kind, p, url, str(home), files, barrier, results), daemon=True)
        for p in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    done: dict[int, Any] = {}
    errors: dict[int, str] = {}
    deadline = started + DEADLINE_S
    # Drain before joining: a child cannot exit while its queued messages are unread.
    while len(done) + len(errors) < WORKERS and time.monotonic() < deadline:
        try:
            status, worker, payload = results.get(timeout=1.0)
        except queue.Empty:
            if not any(p.is_alive() for p in processes):
                break
            continue
        (done if status == "ok" else errors)[worker] = payload
    for process in processes:
        process.join(max(1.0, deadline - time.monotonic()))
    hung = [p.pid for p in processes if p.is_alive()]
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join(10)
    elapsed = time.monotonic() - started
    # A worker whose barrier broke (another failed, or a process never came up) says little; the
    # real failures come first.
    broken = sorted(w for w, tb in errors.items() if tb.rstrip().endswith("BrokenBarrierError"))
    assert not errors, (
        "workers raised:\n"
        + "\n".join(f"worker {w}:\n{tb}" for w, tb in sorted(errors.items()) if w not in broken)
        + (
            f"\nworkers {broken}: BrokenBarrierError (another worker failed, or not all {WORKERS} arrived "
            f"within {BARRIER_TIMEOUT_S:.0f} s)"
            if broken
            else ""
        )
    )
    assert not hung, f"worker processes {hung} did not finish within {DEADLINE_S:.0f} s"
    missing = sorted(set(range(WORKERS)) - set(done))
    assert not missing, (
        f"workers {missing} reported nothing (process died?); exit codes {[p.exitcode for p in processes]}"
    )
    assert all(p.exitcode == 0 for p in processes), [p.exitcode for p in processes]
    released = min(w["released_at"] for w in done.values())
    finished = max(w["finished_at"] for w in done.values())
    timing = (
        f"{elapsed:.1f} s in all, {released - started_wall:.1f} s to start the processes, "
        f"{finished - released:.1f} s of work"
    )
    return done, timing


def _notes(frame: pd.DataFrame, workload: str) -> Counter:
    return Counter(frame.loc[frame["workload"] == workload, "notes"])


def test_sessions_runs_and_imports_from_many_processes_lose_nothing_and_duplicate_nothing(
    any_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ACCOUNTS:
        accounts.register_academic_account(name, None, None, None)
    files = {"shared": str(_write_csv(tmp_path / "shared.csv", _shared_rows()))}
    for worker in range(WORKERS):
        files[f"own-{worker}"] = str(_write_csv(tmp_path / f"own-{worker}.csv", _own_rows(worker)))

    done, timing = _run_workers("mixed", any_db, tmp_path, files)
    with capsys.disabled():
        print(f"\n[concurrency] {make_url(any_db).get_backend_name()}: mixed workload, {WORKERS} workers: {timing}")

    # Usage sessions: per account, exactly what the plan wrote (count, hours, cost), no more.
    planned = [s for w in range(WORKERS) for s in _session_plan(w)]
    for name in ACCOUNTS:
        mine = [s for s in planned if s["username"] == name]
        stats = accounts.usage_stats(name, MONTH)
        assert stats["instances_launched"] == len(mine), name
        assert stats["monthly_instances_launched"] == len(mine), name
        # Quarter hours and a price of 2 USD are exact in binary: equality, not approx.
        assert stats["total_hours"] == sum(s["hours"] for s in mine), name
        assert stats["monthly_hours"] == sum(s["hours"] for s in mine), name
        assert stats["total_cost_usd"] == sum(s["hours"] for s in mine) * PRICE_PER_HOUR_USD, name
    sessions = accounts.list_usage_sessions(month=MONTH)
    assert Counter(sessions["notes"]) == Counter(s["notes"] for s in planned)
    reported_sessions = [i for w in done.values() for i in w["sessions"]]
    assert sorted(reported_sessions) == sorted(sessions["session_id"].tolist())

    stored = runs.list_runs()

    # log_run: every distinct run exactly once, each reported as newly inserted with its own id.
    assert _notes(stored, "logged") == Counter(
        f"logged {w}-{i}" for w in range(WORKERS) for i in range(RUNS_PER_WORKER)
    )
    logged = [r for w in done.values() for r in w["runs"]]
    assert all(inserted for _, inserted in logged)
    assert sorted(run_id for run_id, _ in logged) == sorted(stored.loc[stored["workload"] == "logged", "id"])

    # The file all 16 imported: each row stored once, and the workers' counts add up to the file.
    assert _notes(stored, "shared-import") == Counter(f"shared {n}" for n in range(SHARED_ROWS))
    shared = stored[stored["workload"] == "shared-import"]
    assert shared["run_key"].is_unique and set(shared["source"]) == {"csv"}
    results = [w["shared"] for w in done.values()]
    with capsys.disabled():
        print(f"[concurrency] rows of the shared file inserted per worker: {sorted(r['inserted'] for r in results)}")
    assert all(r["rows"] == SHARED_ROWS and r["refused"] == 0 for r in results), results
    assert all(r["inserted"] + r["duplicates"] == SHARED_ROWS for r in results), results
    assert sum(r["inserted"] for r in results) == SHARED_ROWS

    # Each worker's own file: all there, once, and reported as inserted by that worker.
    for worker in range(WORKERS):
        assert _notes(stored, f"own-{worker}") == Counter(f"own {worker}-{n}" for n in range(OWN_ROWS))
        assert done[worker]["own"]["inserted"] == OWN_ROWS and done[worker]["own"]["refused"] == 0

    assert len(stored) == WORKERS * RUNS_PER_WORKER + SHARED_ROWS + WORKERS * OWN_ROWS

    # The ids an import reports as new are the rows it inserted: across the 16 racing imports each
    # stored row is reported by exactly one of them.
    reported_new = [run_id for r in results for run_id in r["run_ids"]]
    assert sorted(reported_new) == sorted(shared["id"]), (
        f"{len(reported_new)} run ids reported as new for {SHARED_ROWS} stored rows"
    )


def test_one_identical_run_logged_by_sixteen_workers_at_once_is_stored_once(
    any_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two open predictions per task: only the one stored run may score one of them.
    for round_no in range(SAME_RUN_ROUNDS):
        frame = pd.DataFrame([dict(_same_run(round_no), predicted_time_s=s) for s in (100.0, 110.0)])
        assert len(set(runs.record_predictions(frame))) == 2

    done, timing = _run_workers("same", any_db, tmp_path, {})
    with capsys.disabled():
        print(
            f"\n[concurrency] {make_url(any_db).get_backend_name()}: identical run x {WORKERS} workers "
            f"x {SAME_RUN_ROUNDS} rounds: {timing}"
        )

    stored = runs.list_runs()
    pairs = runs.prediction_pairs()
    assert len(stored) == SAME_RUN_ROUNDS, stored[["id", "workload"]]
    # What the workers were told and which predictions got scored: gathered over all rounds, so a
    # failure shows the whole picture.
    problems = []
    for round_no in range(SAME_RUN_ROUNDS):
        rows = stored[stored["workload"] == f"same-{round_no}"]
        assert len(rows) == 1, f"round {round_no}: {len(rows)} rows stored"
        run_id = int(rows["id"].iloc[0])
        outcomes = [w["same"][round_no] for w in done.values()]
        assert {o[0] for o in outcomes} == {run_id}, f"round {round_no}: workers saw ids {outcomes}"
        winners = [o for o in outcomes if o[1]]
        linked = pairs.loc[pairs["run_id"] == run_id, "prediction_id"].tolist()
        if len(linked) != 1:
            problems.append(f"round {round_no}: the one run scores {len(linked)} of the 2 open predictions")
        if len(winners) != 1:
            problems.append(f"round {round_no}: {len(winners)} of {WORKERS} workers were told they inserted it")
        elif len(linked) == 1 and winners[0][2] != linked[0]:
            problems.append(
                f"round {round_no}: the inserting worker was told prediction {winners[0][2]}, stored {linked[0]}"
            )
    assert not problems, "\n".join(problems)
