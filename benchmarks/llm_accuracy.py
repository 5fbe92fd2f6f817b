"""How well are LLM jobs predicted on a GPU, or for a model family, that no run showed?

On ``../shared/data/llm_runs.csv`` (MLPerf Training/Inference, llm-foundry, Megatron-Bridge,
NeMo, ML.ENERGY, NeuSight): leave one GPU model out, then leave one model family out.  Each
time the physics model (:mod:`fedopt_core.prediction.physics`, the path
``PerformancePredictor`` takes for a described job whose configuration was not measured) is
fitted on the other rows, calibration included, and predicts every held-out row with its 90%
interval.  Scores: the median over groups of each group's median APE and of its 90% coverage.

The napkin baseline runs on the same rows: 6N FLOPs per token for training (2N for inference),
N the active parameters, at 40% of the GPUs' dense BF16 peak.  It cannot answer MLPerf
Training's time-to-train rows (the work is "one run"), so the ratio is on rows both answer.

    .venv/bin/python benchmarks/llm_accuracy.py [--data ../shared/data/llm_runs.csv] [--workers 2]

Targets (issue 12): unseen GPU median APE <= 0.12, unseen model <= 0.20, coverage 0.87-0.93 in
both, and at least 2x better than the napkin baseline.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = (REPO / ".." / "shared" / "data" / "llm_runs.csv").resolve()
TARGETS = {"gpu_key": 0.12, "family": 0.20}
TARGET_COVERAGE = (0.87, 0.93)
TARGET_BASELINE_RATIO = 2.0
NAPKIN_EFFICIENCY = 0.40
GROUPINGS = {"gpu_key": "unseen GPU model", "family": "unseen model family"}


def _load(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    from fedopt_core.catalog.datasets import load_llm_runs
    from fedopt_core.prediction.physics import physics_rows

    runs = load_llm_runs(path)
    return runs, physics_rows(runs)


def napkin_log_time(runs: pd.DataFrame) -> np.ndarray:
    """log seconds by the napkin rule, NaN where the work is not a number of tokens."""
    from fedopt_core.catalog import gpus
    from fedopt_core.prediction import work

    peak = gpus.gpu_specs(runs["gpu_type"])["tensor_fp16_tflops"].to_numpy(float) * 1e12
    out = np.full(len(runs), np.nan)
    for pos, row in enumerate(runs.to_dict("records")):
        job = work.describe_job(row)
        if job is None or row.get("work_unit") != "tokens":
            continue
        per_token = (2.0 if row.get("task_type") == "inference" else 6.0) * job.model.active_params_b * 1e9
        gpus_n = max(float(row["gpu_count"]), 1.0)
        out[pos] = np.log(float(row["work_units"]) * per_token / (gpus_n * NAPKIN_EFFICIENCY * peak[pos]))
    return out


def _one_group(args: tuple[str, str, str]) -> pd.DataFrame:
    from threadpoolctl import threadpool_limits

    from fedopt_core.prediction.physics import PhysicsModel

    path, by, group = args
    runs, table = _load(Path(path))
    held = (table[by].fillna("?") == group).to_numpy(bool) & table["applies"].to_numpy(bool)
    with threadpool_limits(limits=1):
        model = PhysicsModel(confidence=0.9).fit(runs.loc[~held])
        pred = model.predict(runs.loc[held].reset_index(drop=True))
    y = table.loc[held, "y"].to_numpy(float)
    return pd.DataFrame(
        {
            "by": by,
            "group": group,
            "y": y,
            "log_pred": pred["log_pred"].to_numpy(float),
            "log_lower": pred["log_lower"].to_numpy(float),
            "log_upper": pred["log_upper"].to_numpy(float),
            "tier": pred["tier"].to_numpy(object),
            "napkin": napkin_log_time(runs.loc[held].reset_index(drop=True)),
        }
    )


def _ape(log_pred: pd.Series, y: pd.Series) -> pd.Series:
    return np.abs(np.exp(log_pred - y) - 1.0)


def summarise(frame: pd.DataFrame, by: str) -> dict[str, float]:
    part = frame[frame["by"] == by].copy()
    answered = part[part["log_pred"].notna()].copy()
    answered["ape"] = _ape(answered["log_pred"], answered["y"])
    answered["covered"] = (answered["log_lower"] <= answered["y"]) & (answered["y"] <= answered["log_upper"])
    per = answered.groupby("group").agg(ape=("ape", "median"), cov=("covered", "mean"))
    both = answered[answered["napkin"].notna()].copy()
    both["napkin_ape"] = _ape(both["napkin"], both["y"])
    pair = both.groupby("group").agg(ape=("ape", "median"), napkin=("napkin_ape", "median"))
    return {
        "groups": float(len(per)),
        "rows": float(len(part)),
        "answered": float(len(answered)),
        "median_ape": float(per["ape"].median()),
        "coverage": float(per["cov"].median()),
        "pooled_coverage": float(answered["covered"].mean()),
        "both_median_ape": float(pair["ape"].median()),
        "napkin_median_ape": float(pair["napkin"].median()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--by", choices=list(GROUPINGS), action="append", help="one grouping only (repeatable)")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"data file not found: {args.data}")
    _, table = _load(args.data)
    jobs = []
    for by in args.by or list(GROUPINGS):
        groups = sorted(set(table.loc[table["applies"], by].fillna("?")))
        jobs += [(str(args.data), by, g) for g in groups]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(args.workers, 1)) as pool:
        frame = pd.concat(list(pool.map(_one_group, jobs)), ignore_index=True)
    print(f"{len(jobs)} fits in {time.perf_counter() - started:.0f} s on {args.data.name}")
    all_met = True
    for by in args.by or list(GROUPINGS):
        s = summarise(frame, by)
        ratio = s["napkin_median_ape"] / s["both_median_ape"] if s["both_median_ape"] > 0 else float("inf")
        checks = {
            f"median APE {s['median_ape']:.3f} <= {TARGETS[by]:.2f}": s["median_ape"] <= TARGETS[by],
            f"coverage {s['coverage']:.3f} in {TARGET_COVERAGE}": TARGET_COVERAGE[0]
            <= s["coverage"]
            <= TARGET_COVERAGE[1],
            f"napkin/fedopt {ratio:.2f} >= {TARGET_BASELINE_RATIO:g}": ratio >= TARGET_BASELINE_RATIO,
        }
        print(
            f"\n{GROUPINGS[by]}: {s['groups']:.0f} groups, {s['answered']:.0f} of {s['rows']:.0f} rows answered "
            f"(pooled 90% coverage {s['pooled_coverage']:.3f})"
        )
        print(
            f"  on rows both answer: fedopt median APE {s['both_median_ape']:.3f}, "
            f"napkin baseline {s['napkin_median_ape']:.3f}"
        )
        for text, met in checks.items():
            print(f"  [{'met' if met else 'NOT MET'}] {text}")
            all_met &= met
        tiers = frame[(frame["by"] == by) & frame["log_pred"].notna()].copy()
        tiers["ape"] = _ape(tiers["log_pred"], tiers["y"])
        tiers["covered"] = (tiers["log_lower"] <= tiers["y"]) & (tiers["y"] <= tiers["log_upper"])
        table_ = tiers.groupby("tier").agg(
            rows=("ape", "size"), median_ape=("ape", "median"), coverage=("covered", "mean")
        )
        print(table_.round(3).to_string())
    print("\nall targets met" if all_met else "\nsome targets NOT met (see above)")


if __name__ == "__main__":
    main()
