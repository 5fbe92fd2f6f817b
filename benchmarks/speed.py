"""How fast are predictions, rankings and fits?  Vectorised calls against a per-row loop.

    .venv/bin/python benchmarks/speed.py --data /work/shared/data/gpu_benchmarks.csv

Prints: ranking 10,000 platforms for one task; predict_frame on 100,000 rows; the same work
through a Python loop of predict_execution_time calls (a smaller loop, extrapolated per call)
and the ratio (target >= 50x); fit time on the 2,661 real runs and on 50,000 runs made by
resampling and perturbing them; peak memory.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from fedopt_core import compat
from fedopt_core.catalog import gpus
from fedopt_core.catalog.datasets import load_lambda_benchmarks
from fedopt_core.planning.ranking import rank_platforms
from fedopt_core.prediction.estimator import PerformancePredictor

REPO = Path(__file__).resolve().parent.parent


DEFAULT_DATA = (REPO / ".." / "shared" / "data" / "gpu_benchmarks.csv").resolve()
TARGET_RATIO = 50.0
TASK_FIELDS = ["task_type", "workload", "precision", "batch_size", "work_units", "software"]


def perturbed_runs(runs: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """n runs resampled from real ones: 20 variants of each workload (own speed factor), 5% noise."""
    out = runs.iloc[rng.integers(0, len(runs), n)].reset_index(drop=True).copy()
    variant = rng.integers(0, 20, n)
    factor = np.exp(rng.normal(0.0, 0.3, 20))[variant]
    out["workload"] = out["workload"].astype(str) + "-v" + variant.astype(str)
    out["execution_time_s"] = out["execution_time_s"].to_numpy(float) * factor * np.exp(rng.normal(0, 0.05, n))
    out["platform"] = out["platform"].astype(str) + "#" + rng.integers(0, 50, n).astype(str)
    return out


def platform_table(n: int, rng: np.random.Generator) -> pd.DataFrame:
    names = list(gpus.spec_table()["gpu_name"]) + ["Zorblax 9000", "cpu"]
    gpu = np.array(names, dtype=object)[rng.integers(0, len(names), n)]
    count = np.where(gpu == "cpu", 0, rng.choice([1, 2, 4, 8], n))
    return pd.DataFrame(
        {
            "platform": [f"platform-{i}" for i in range(n)],
            "provider": rng.choice(["lambda", "aws", "nebius"], n),
            "gpu_type": gpu,
            "gpu_count": count,
            "price_per_hour_usd": np.round(rng.uniform(0.2, 40.0, n), 2),
        }
    )


def timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="gpu_benchmarks.csv (default: %(default)s)")
    parser.add_argument("--loop-calls", type=int, default=200, help="predict_execution_time calls to time")
    parser.add_argument("--big-fit", type=int, default=50_000, help="runs in the large fit")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)

    runs = load_lambda_benchmarks(args.data)
    model, fit_small_s = timed(lambda: PerformancePredictor(random_state=0).fit(runs))
    print(f"fit on {len(runs):,} real runs: {fit_small_s:.1f} s ({model.n_anchor_configs_} distinct configurations)")

    # --- rank 10,000 platforms for one task
    task = {
        "task_type": "training",
        "workload": "bert_large_squad",
        "precision": "fp16_amp",
        "software": "v1_ngc22-23",
        "batch_size": 32.0,
        "work_units": 5e6,
    }
    platforms = platform_table(10_000, rng)
    rank_platforms(task, platforms.head(50), predictor=model)  # warm caches (GPU catalogue)
    ranked, rank_s = timed(lambda: rank_platforms(task, platforms, objective="balanced", predictor=model))
    print(
        f"rank_platforms, 10,000 platforms: {rank_s:.2f} s ({rank_s / 1e4 * 1e6:.0f} us per platform; "
        f"{int(ranked['pareto_optimal'].sum())} on the Pareto front)"
    )

    # --- predict 100,000 rows (task and platform drawn from real runs, platforms perturbed)
    rows = runs.iloc[rng.integers(0, len(runs), 100_000)].reset_index(drop=True)
    rows = rows.drop(columns=["execution_time_s"])
    rows["batch_size"] = rows["batch_size"] * rng.choice([0.5, 1.0, 2.0], len(rows))
    rows["gpu_type"] = np.where(
        rng.random(len(rows)) < 0.2,
        platforms["gpu_type"].to_numpy(object)[rng.integers(0, 10_000, len(rows))],
        rows["gpu_type"].to_numpy(object),
    )
    rows["gpu_count"] = np.where(rows["gpu_type"] == "cpu", 0, rows["gpu_count"])
    pred, predict_s = timed(lambda: model.predict_frame(rows))
    print(
        f"predict_frame, 100,000 rows: {predict_s:.2f} s ({predict_s / 1e5 * 1e6:.1f} us per row); "
        f"bases {pred['basis'].value_counts().to_dict()}"
    )

    # --- the same through a Python loop of single predictions (timed on a sample, per call)
    sample = rows.sample(args.loop_calls, random_state=1)
    task_cols = [c for c in TASK_FIELDS if c in sample]
    plat_cols = ["platform", "provider", "gpu_type", "gpu_count", "price_per_hour_usd"]
    records = [
        (
            {k: v for k, v in r.items() if k in task_cols and pd.notna(v)},
            {k: v for k, v in r.items() if k in plat_cols and pd.notna(v)},
        )
        for r in sample.to_dict("records")
    ]
    _, loop_s = timed(lambda: [compat.predict_execution_time(model, t, p) for t, p in records])
    per_call = loop_s / len(records)
    loop_100k = per_call * 100_000
    loop_10k = per_call * 10_000
    print(
        f"loop of predict_execution_time: {per_call * 1e3:.1f} ms per call ({len(records)} calls timed) -> "
        f"100,000 rows ~{loop_100k:,.0f} s, 10,000 platforms ~{loop_10k:,.0f} s"
    )
    ratio_predict = loop_100k / predict_s
    ratio_rank = loop_10k / rank_s

    def verdict(r):
        return "PASS" if r >= TARGET_RATIO else "FAIL"

    print(f"speed-up, predict 100k: {ratio_predict:,.0f}x  {verdict(ratio_predict)} (target >= {TARGET_RATIO:.0f}x)")
    print(f"speed-up, rank 10k:     {ratio_rank:,.0f}x  {verdict(ratio_rank)} (target >= {TARGET_RATIO:.0f}x)")

    # --- a large fit
    big = perturbed_runs(runs, args.big_fit, rng)
    big_model, fit_big_s = timed(lambda: PerformancePredictor(random_state=0).fit(big))
    print(
        f"fit on {len(big):,} resampled+perturbed runs: {fit_big_s:.1f} s "
        f"({big_model.n_anchor_configs_:,} distinct configurations, {big_model.n_training_pairs_:,} pairs "
        f"before the {big_model.max_pairs:,} cap)"
    )

    # --- memory: the peak Python allocation of one 100k prediction, and the process peak
    tracemalloc.start()
    model.predict_frame(rows)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak traced allocation during predict_frame(100k): {peak / 2**20:.0f} MiB; process peak RSS {rss_mb:.0f} MiB"
    )
    return 0 if min(ratio_predict, ratio_rank) >= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
