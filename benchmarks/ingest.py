"""How fast does a CSV of 100,000 runs import, and how much memory does it take?

Generates (seeded) 100,000 distinct runs in fedopt's run CSV format (12 columns, start times, a few
notes), imports them into a fresh SQLite database with ``runs.import_csv`` and prints rows per
second and the peak resident memory above the level before the import (sampled every 20 ms).
In the same run, as baselines: ``pandas.read_csv`` + ``DataFrame.to_sql`` of the same file into a
bare table (no validation, no identity, no duplicate check), and the validation + identity step
alone (``schema.validate_frame`` + ``schema.run_keys`` on the whole frame).  Then imports the file
a second time (everything is a duplicate) and checks it adds nothing.

The retrain timing will be added here later.

Run: .venv/bin/python benchmarks/ingest.py [--rows 100000] [--batch-size 1000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, text


def generate(path: Path, n: int, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01T00:00:00Z") + pd.to_timedelta(rng.integers(0, 365 * 24 * 3600, n), unit="s")
    frame = pd.DataFrame({
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
    })
    frame.to_csv(path, index=False)


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, default=1000)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="fedopt-ingest-") as tmp:
        home = Path(tmp)
        os.environ["FEDOPT_HOME"] = str(home)
        os.environ["DATABASE_URL"] = url = f"sqlite:///{home / 'fedopt.db'}"
        from fedopt_core import db, runs, schema

        db.upgrade(url)
        csv_path = home / "runs.csv"
        t0 = time.perf_counter()
        generate(csv_path, args.rows)
        size_mb = csv_path.stat().st_size / 1e6
        print(f"generated {args.rows:,} runs, {size_mb:.1f} MB, in {time.perf_counter() - t0:.1f} s")

        # Baseline 1: parse + bulk insert with no validation, identity or duplicate check.
        baseline_engine = create_engine(f"sqlite:///{home / 'baseline.db'}")
        before = PeakRss.now_mb()
        with PeakRss() as rss:
            t0 = time.perf_counter()
            frame = pd.read_csv(csv_path)
            frame.to_sql("run", baseline_engine, index=False, chunksize=args.batch_size)
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
            result = runs.import_csv(csv_path, batch_size=args.batch_size)
            import_s = time.perf_counter() - t0
        import_mb = rss.peak_mb - before
        assert result.inserted == args.rows and not result.errors, result.summary()

        t0 = time.perf_counter()
        again = runs.import_csv(csv_path, batch_size=args.batch_size)
        again_s = time.perf_counter() - t0
        assert again.inserted == 0 and again.duplicates == args.rows, again.summary()
        with db.get_engine(url).connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM run")).scalar()
        assert stored == args.rows

        print(f"runs.import_csv (batch {args.batch_size}): {import_s:.1f} s = {args.rows / import_s:,.0f} rows/s, "
              f"peak RSS +{import_mb:.0f} MB")
        print(f"second import (all duplicates, adds nothing): {again_s:.1f} s = {args.rows / again_s:,.0f} rows/s")
        print(f"baseline read_csv + to_sql, no validation: {baseline_s:.1f} s = {args.rows / baseline_s:,.0f} rows/s, "
              f"peak RSS +{baseline_mb:.0f} MB")
        print(f"of which validation + identity alone (schema.validate_frame + run_keys): {validate_s:.1f} s")
        print(f"ratio import / baseline: {import_s / baseline_s:.1f}x time, "
              f"{import_mb / max(baseline_mb, 1):.1f}x memory")
        db.dispose_engines()


if __name__ == "__main__":
    main()
