"""How fast does fedopt take in runs, retrain on them, and log a run while a retrain runs?

Three parts, each printed with a baseline measured in the same run (the machines are noisy):

1. Import.  Generates (seeded) 100,000 distinct runs in fedopt's run CSV format (12 columns, start
   times, a few notes), imports them into a fresh SQLite database with ``runs.import_csv`` and
   prints rows per second and the peak resident memory above the level before the import (sampled
   every 20 ms).  Baselines: ``pandas.read_csv`` + ``DataFrame.to_sql`` of the same file into a bare
   table (no validation, no identity, no duplicate check), and the validation + identity step alone
   (``schema.validate_frame`` + ``schema.run_keys`` on the whole frame).  Then imports the file a
   second time (everything is a duplicate) and checks it adds nothing.

2. Retrain.  The random times of part 1 are unrelated to hardware, so the training set is instead
   100,000 runs resampled from the real public benchmark (``gpu_benchmarks.csv`` through
   ``datasets.load_lambda_benchmarks``), each time multiplied by seeded log-normal noise (sigma 0.05)
   and given its own ``started_at`` (part of a run's identity), stored with ``runs.store_runs`` in
   a second fresh SQLite database.  Times ``training.train_now`` (the real path: load, fit with the
   default ``PerformancePredictor``, score on the newest 20%, save a version) with its stage split
   and peak RSS.  Baseline: ``PerformancePredictor().fit`` on the plain 2,661 benchmark runs, once
   before and once after the retrain (the ratio uses their mean).  Each of the three runs in a
   fresh spawned process, one after the other, so each peak RSS is its own.

3. Logging during a retrain.  Latency of ``runs.log_run`` (one run each, distinct values; median
   and max) (a) with no retrain running, (b) while ``train_now`` runs in a background thread of
   the same process, started with ``training.maybe_retrain_async(force=True)`` as the dashboard
   does, and (c) while it runs in a separate (spawned) process.  The logs are spread over the
   retrain (by default over 70% of part 2's retrain time); one counts only if the retrain still
   held its lease (and its thread or process was alive) when the log returned.
   FEDOPT_RETRAIN_EVERY is set very high so the logs start no retrain of their own.

Run: .venv/bin/python benchmarks/ingest.py [--rows 100000] [--batch-size 1000] [--skip-import]
     [--retrain-rows 100000] [--logs 30] [--skip-logging] [--skip-process]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

# Before fedopt_core reads its settings: the timed logs must not start retrains of their own.
os.environ["FEDOPT_RETRAIN_EVERY"] = "1000000"

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, text

from fedopt_core import config

DEFAULT_BENCHMARK = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "gpu_benchmarks.csv"


def generate(path: Path, n: int, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01T00:00:00Z") + pd.to_timedelta(rng.integers(0, 365 * 24 * 3600, n), unit="s")
    frame = pd.DataFrame(
        {
            "task_type": rng.choice(["training", "inference", "batch"], n),
            "workload": rng.choice(["resnet50", "bert_large_squad", "gnmt", "ncf", "ssd", "llama-7b-lora"], n),
            "precision": rng.choice(["fp16_amp", "fp32", "bf16"], n),
            "batch_size": rng.choice([32, 64, 128, 256, 512], n),
            "work_units": rng.choice([1e5, 1e6, 1e7], n),
            "platform": rng.choice(["gpu_1x_a10", "gpu_8x_h100_sxm5", "gpu_1x_gh200", "lab-box"], n),
            "gpu_type": rng.choice(["A10", "H100 SXM5", "GH200", "RTX A6000"], n),
            "gpu_count": rng.choice([1, 2, 4, 8], n),
            "price_per_hour_usd": rng.uniform(0.5, 30, n).round(2),
            "execution_time_s": rng.lognormal(6, 1.5, n).round(3),
            "started_at": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "notes": np.where(rng.random(n) < 0.05, "re-run after OOM", ""),
        }
    )
    frame.to_csv(path, index=False)


def resampled_runs(bench: pd.DataFrame, n: int, sigma: float = 0.05, seed: int = 11) -> pd.DataFrame:
    """n runs drawn from the benchmark's rows, times times log-normal noise, each with its own start."""
    from fedopt_core import schema

    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(bench), n)
    out = bench[schema.RUN_FIELDS].iloc[rows].reset_index(drop=True)
    out["execution_time_s"] = out["execution_time_s"].to_numpy(float) * np.exp(rng.normal(0.0, sigma, n))
    # A distinct start per run: the start is part of a run's identity, so no resampled row is a duplicate.
    start = pd.Timestamp("2025-01-01T00:00:00Z") + pd.to_timedelta(np.arange(n) * 60, unit="s")
    out["started_at"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    out["notes"] = "resample of gpu_benchmarks.csv line " + (rows + 2).astype(str)
    return out


class PeakRss:
    """Samples this process's resident memory in a thread; ``peak_mb`` is the highest seen."""

    def __init__(self, interval_s: float = 0.02):
        self.interval_s = interval_s
        self.peak_mb = self.now_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now_mb() -> float:
        with open("/proc/self/statm") as handle:
            resident_pages = int(handle.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1e6

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self.now_mb())
            time.sleep(self.interval_s)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self.now_mb())


# --------------------------------------------------------------------------- 1. import


def bench_import(home: Path, rows: int, batch_size: int) -> None:
    from fedopt_core import db, runs, schema

    url = f"sqlite:///{home / 'fedopt.db'}"
    db.upgrade(url)
    config.reload_settings(database_url=url)
    csv_path = home / "runs.csv"
    t0 = time.perf_counter()
    generate(csv_path, rows)
    size_mb = csv_path.stat().st_size / 1e6
    print(f"generated {rows:,} runs, {size_mb:.1f} MB, in {time.perf_counter() - t0:.1f} s")

    # Baseline 1: parse + bulk insert with no validation, identity or duplicate check.
    baseline_engine = create_engine(f"sqlite:///{home / 'baseline.db'}")
    before = PeakRss.now_mb()
    with PeakRss() as rss:
        t0 = time.perf_counter()
        frame = pd.read_csv(csv_path)
        frame.to_sql("run", baseline_engine, index=False, chunksize=batch_size)
        baseline_s = time.perf_counter() - t0
    baseline_mb = rss.peak_mb - before
    baseline_engine.dispose()

    # Baseline 2: the run schema's validation and identity on the whole frame, nothing written.
    raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False).astype(object)
    t0 = time.perf_counter()
    good, _ = schema.validate_frame(raw)
    schema.run_keys(good)
    validate_s = time.perf_counter() - t0
    del raw, good, frame

    before = PeakRss.now_mb()
    with PeakRss() as rss:
        t0 = time.perf_counter()
        result = runs.import_csv(csv_path, batch_size=batch_size)
        import_s = time.perf_counter() - t0
    import_mb = rss.peak_mb - before
    assert result.inserted == rows and not result.errors, result.summary()

    t0 = time.perf_counter()
    again = runs.import_csv(csv_path, batch_size=batch_size)
    again_s = time.perf_counter() - t0
    assert again.inserted == 0 and again.duplicates == rows, again.summary()
    with db.get_engine(url).connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM run")).scalar()
    assert stored == rows

    print(
        f"runs.import_csv (batch {batch_size}): {import_s:.1f} s = {rows / import_s:,.0f} rows/s, "
        f"peak RSS +{import_mb:.0f} MB"
    )
    print(f"second import (all duplicates, adds nothing): {again_s:.1f} s = {rows / again_s:,.0f} rows/s")
    print(
        f"baseline read_csv + to_sql, no validation: {baseline_s:.1f} s = {rows / baseline_s:,.0f} rows/s, "
        f"peak RSS +{baseline_mb:.0f} MB"
    )
    print(f"of which validation + identity alone (schema.validate_frame + run_keys): {validate_s:.1f} s")
    print(f"ratio import / baseline: {import_s / baseline_s:.1f}x time, {import_mb / max(baseline_mb, 1):.1f}x memory")


# --------------------------------------------------------------------------- 2. retrain


# Peak RSS in the child is sampled, not read from getrusage: a spawned child starts by fork + exec,
# and ru_maxrss keeps the parent's size at the fork.


def _fit_in_fresh_process(benchmark: str) -> dict[str, float]:
    from fedopt_core.catalog import datasets
    from fedopt_core.prediction.estimator import PerformancePredictor

    bench = datasets.load_lambda_benchmarks(benchmark)
    before = PeakRss.now_mb()
    with PeakRss() as rss:
        t0 = time.perf_counter()
        model = PerformancePredictor().fit(bench)
        seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "before_mb": before,
        "peak_mb": rss.peak_mb,
        "runs": len(bench),
        "configurations": model.n_anchor_configs_,
    }


def _train_now_in_fresh_process(url: str) -> dict[str, object]:
    config.reload_settings(database_url=url)
    os.environ["FEDOPT_RETRAIN_EVERY"] = "1000000"
    # Imported before the clock and memory baseline start, as in a dashboard process that has run a while.
    from fedopt_core import runs  # noqa: F401 - imported for its start-up cost, before the clock starts
    from fedopt_core.prediction import training

    marks: list[tuple[str, float]] = []
    before = PeakRss.now_mb()
    with PeakRss() as rss:
        t0 = time.perf_counter()
        result = training.train_now(progress=lambda stage, _f: marks.append((stage, time.perf_counter())))
        seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "before_mb": before,
        "peak_mb": rss.peak_mb,
        "start_s": marks[0][1] - t0,
        "stages": [
            (stage.split(" ")[0], end - start) for (stage, start), (_, end) in zip(marks, marks[1:], strict=False)
        ],
        "version": result.version_id,
        "status": result.status,
        "metrics": result.metrics,
    }


def in_fresh_process(fn: Callable[..., dict], *args: object) -> dict:
    """Run fn in a new (spawned) interpreter: its peak RSS is its own, not what earlier parts left behind."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def bench_retrain(url: str, bench: pd.DataFrame, benchmark: Path, rows: int, sigma: float) -> float:
    """Fill ``url`` with ``rows`` resampled runs and time one train_now; returns its seconds."""
    from fedopt_core import db, runs
    from fedopt_core.prediction import training

    db.upgrade(url)
    config.reload_settings(database_url=url)
    frame = resampled_runs(bench, rows, sigma)
    t0 = time.perf_counter()
    stored = runs.store_runs(frame, source="benchmark")
    assert stored.inserted == rows and not stored.errors, stored.summary()
    print(
        f"stored {rows:,} runs resampled from the {len(bench):,} benchmark runs (time noise sigma {sigma}) "
        f"with runs.store_runs in {time.perf_counter() - t0:.1f} s"
    )
    with db.get_engine(url).connect() as conn:
        in_db = conn.execute(text("SELECT count(*) FROM run")).scalar()
    del frame

    # Each in a fresh process, one after the other: clean peak RSS, and no CPU shared between them.
    # The baseline fit runs before and after the retrain, and the ratio uses their mean: the load on
    # a shared machine drifts over a minute or two.
    fits = [in_fresh_process(_fit_in_fresh_process, str(benchmark))]
    train = in_fresh_process(_train_now_in_fresh_process, url)
    fits.append(in_fresh_process(_fit_in_fresh_process, str(benchmark)))
    fit_s = statistics.mean(f["seconds"] for f in fits)
    fit_mb = max(f["peak_mb"] - f["before_mb"] for f in fits)
    fit = fits[0]
    each_s = " and ".join(f"{f['seconds']:.1f}" for f in fits)
    print(
        f"baseline PerformancePredictor().fit on the {fit['runs']:,} benchmark runs: {each_s} s "
        f"(before and after the retrain), peak RSS {max(f['peak_mb'] for f in fits):.0f} MB "
        f"(+{fit_mb:.0f} MB above the process before the fit; {fit['configurations']:,} configurations)"
    )
    train_mb = train["peak_mb"] - train["before_mb"]
    metrics = train["metrics"]
    model, _ = training.active_model()
    print(
        f"training.train_now on {in_db:,} runs in the database: {train['seconds']:.1f} s, "
        f"peak RSS {train['peak_mb']:.0f} MB (+{train_mb:.0f} MB); version {train['version']} {train['status']}, "
        f"held-out median APE {metrics['median_ape']:.3f}, coverage {metrics['coverage']:.2f} on "
        f"{metrics['n_holdout']:,} runs ({model.n_anchor_configs_:,} configurations after collapsing repeats)"
    )
    print(
        "  stages: "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in train["stages"])
        + f" (lease and start {train['start_s']:.2f} s)"
    )
    print(
        f"ratio retrain {in_db:,} / fit {fit['runs']:,}: {train['seconds'] / fit_s:.1f}x time, "
        f"{train_mb / max(fit_mb, 1):.1f}x memory above the process before the work"
    )
    return float(train["seconds"])


# --------------------------------------------------------------------------- 3. logging during a retrain


_probe_count = 0


def probe_run() -> dict[str, object]:
    """One run with values no earlier probe had (a new identity each call)."""
    global _probe_count
    _probe_count += 1
    return {
        "task_type": "training",
        "workload": "resnet50",
        "precision": "fp16_amp",
        "batch_size": 256,
        "work_units": 1e6,
        "platform": "gpu_1x_a10",
        "provider": "lambda",
        "gpu_type": "A10",
        "gpu_count": 1,
        "price_per_hour_usd": 0.75,
        "execution_time_s": 1200.0 + 0.125 * _probe_count,
        "started_at": (pd.Timestamp("2026-01-01T00:00:00Z") + pd.Timedelta(seconds=_probe_count)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        "notes": f"latency probe {_probe_count}",
    }


def timed_logs(
    url: str, n: int, interval_s: float, running: Callable[[], bool] | None = None
) -> tuple[list[float], dict[str, int]]:
    """Latencies (s) of n single log_run calls, paced; with ``running``, only those that returned while it held."""
    from fedopt_core import runs
    from fedopt_core.prediction import training

    latencies, stages = [], {}
    start = time.perf_counter()
    for k in range(n):
        # A fixed schedule (not a sleep after each log), so slow logs do not push the last ones past the retrain.
        time.sleep(max(0.0, start + k * interval_s - time.perf_counter()))
        t0 = time.perf_counter()
        logged = runs.log_run(probe_run())
        latency = time.perf_counter() - t0
        assert logged.inserted
        if running is not None:
            if not running():
                break
            stage = str(training.training_status().get("stage", "?")).split(" ")[0]
            stages[stage] = stages.get(stage, 0) + 1
        latencies.append(latency)
    return latencies, stages


def _train_in_process(url: str) -> None:
    config.reload_settings(database_url=url)
    os.environ["FEDOPT_RETRAIN_EVERY"] = "1000000"
    from fedopt_core.prediction import training

    training.train_now()


def _wait_for_lease(url: str, alive: Callable[[], bool], timeout_s: float = 300) -> None:
    from fedopt_core.prediction import training

    deadline = time.monotonic() + timeout_s
    while training.lease_holder() is None:
        if not alive() or time.monotonic() > deadline:
            raise RuntimeError("the retrain never took its lease")
        time.sleep(0.01)


def describe(name: str, latencies: list[float], n: int, stages: dict[str, int] | None = None) -> str:
    if not latencies:
        return f"log_run {name}: none of {n} logs returned while the retrain ran (try a smaller --log-interval)"
    where = f"; stages at each log: {', '.join(f'{k} {v}' for k, v in stages.items())}" if stages else ""
    return (
        f"log_run {name}: median {statistics.median(latencies) * 1e3:.1f} ms, "
        f"max {max(latencies) * 1e3:.1f} ms over {len(latencies)} of {n} logs{where}"
    )


def bench_logging(url: str, n: int, interval_s: float, in_process: bool) -> None:
    config.reload_settings(database_url=url)
    from fedopt_core import runs
    from fedopt_core.prediction import training

    runs.log_run(probe_run())  # first call pays one-off imports and statement compilation
    idle, _ = timed_logs(url, n, 0.05)
    print(describe("(a) no retrain running", idle, n))

    versions = len(training.list_versions())
    thread = training.maybe_retrain_async(force=True)
    assert thread is not None, "the background retrain did not start"
    _wait_for_lease(url, thread.is_alive)
    t0 = time.perf_counter()
    busy, stages = timed_logs(
        url, n, interval_s, running=lambda: thread.is_alive() and training.lease_holder() is not None
    )
    thread.join()
    assert len(training.list_versions()) == versions + 1, "the background retrain failed (see the log)"
    print(
        f"background-thread retrain (maybe_retrain_async) finished within {time.perf_counter() - t0:.1f} s "
        "of taking its lease"
    )
    print(describe("(b) during a retrain in a thread of this process", busy, n, stages))
    if busy:
        print(
            f"ratio (b)/(a): median {statistics.median(busy) / statistics.median(idle):.1f}x, "
            f"max {max(busy) / max(idle):.1f}x"
        )

    if not in_process:
        return
    process = multiprocessing.get_context("spawn").Process(target=_train_in_process, args=(url,))
    process.start()
    _wait_for_lease(url, process.is_alive)
    t0 = time.perf_counter()
    other, stages = timed_logs(
        url, n, interval_s, running=lambda: process.is_alive() and training.lease_holder() is not None
    )
    process.join()
    assert process.exitcode == 0 and len(training.list_versions()) == versions + 2, "the process retrain failed"
    print(f"separate-process retrain finished within {time.perf_counter() - t0:.1f} s of taking its lease")
    print(describe("(c) during a retrain in another process", other, n, stages))
    if other:
        print(
            f"ratio (c)/(a): median {statistics.median(other) / statistics.median(idle):.1f}x, "
            f"max {max(other) / max(idle):.1f}x"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000, help="runs in the generated CSV of part 1")
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--skip-import", action="store_true", help="skip part 1 (the CSV import)")
    ap.add_argument(
        "--retrain-rows", type=int, default=100_000, help="resampled runs to retrain on (parts 2 and 3); 0 skips both"
    )
    ap.add_argument("--noise-sigma", type=float, default=0.05, help="log-normal sigma of the resampled times")
    ap.add_argument("--benchmark", type=Path, default=DEFAULT_BENCHMARK, help="gpu_benchmarks.csv")
    ap.add_argument("--logs", type=int, default=30, help="timed log_run calls in each case of part 3")
    ap.add_argument(
        "--log-interval",
        type=float,
        default=None,
        help="seconds between logs during a retrain (default: spread over 70%% of part 2's retrain)",
    )
    ap.add_argument("--skip-logging", action="store_true", help="skip part 3")
    ap.add_argument("--skip-process", action="store_true", help="skip case (c), the retrain in another process")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="fedopt-ingest-") as tmp:
        home = Path(tmp)
        os.environ["FEDOPT_HOME"] = str(home)
        os.environ["DATABASE_URL"] = f"sqlite:///{home / 'fedopt.db'}"
        from fedopt_core import db
        from fedopt_core.catalog import datasets

        if not args.skip_import:
            bench_import(home, args.rows, args.batch_size)
        if args.retrain_rows > 0:
            url = f"sqlite:///{home / 'retrain.db'}"
            bench = datasets.load_lambda_benchmarks(args.benchmark)
            retrain_s = bench_retrain(url, bench, args.benchmark, args.retrain_rows, args.noise_sigma)
            if not args.skip_logging:
                interval = args.log_interval if args.log_interval is not None else 0.7 * retrain_s / args.logs
                bench_logging(url, args.logs, interval, in_process=not args.skip_process)
        db.dispose_engines()


if __name__ == "__main__":
    main()
