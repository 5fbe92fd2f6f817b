"""How well does the predictor do on a GPU it has never seen?  Leave-one-GPU-model-out.

For each GPU model in the Lambda benchmark: fit on the runs of every other GPU model, predict
all runs of the held-out one, and score the median absolute percentage error (APE) and whether
the measured time falls inside the 90% interval (and, from the same fits, the intervals at other
nominal levels: the calibration curve).  The seed design (a random forest on eleven
id-like columns, raw seconds, tree-spread interval) runs in the same loop for comparison.

    .venv/bin/python benchmarks/accuracy.py --data /work/shared/data/gpu_benchmarks.csv

Targets (from the issue): median over GPUs of the per-GPU median APE <= 0.10, mean over GPUs
<= 0.15, empirical coverage of the 90% interval between 0.87 and 0.93.

``--one-anchor`` adds a second question (no target, reported for honesty): a workload nobody
measured, except for ONE run the user passes as an anchor.  Leave-one-workload-out: fit on the
other workloads, give one single-GPU run of the held-out workload per (precision, software),
predict all its other runs on other GPUs.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from fedopt_core.catalog.datasets import load_lambda_benchmarks
from fedopt_core.prediction.estimator import PerformancePredictor

REPO = Path(__file__).resolve().parent.parent


DEFAULT_DATA = (REPO / ".." / "shared" / "data" / "gpu_benchmarks.csv").resolve()
TARGET_MEDIAN_APE = 0.10
TARGET_MEAN_APE = 0.15
TARGET_COVERAGE = (0.87, 0.93)
CONFIDENCE = 0.9

SEED_COLUMNS = [
    "task_type_id",
    "input_size_mb",
    "output_size_mb",
    "memory_required_gb",
    "cpu_cores_required",
    "gpu_memory_required_gb",
    "is_batch_processing",
    "platform_id",
    "gpu_type_id",
    "cpu_type_id",
    "network_speed_mbps",
]


def seed_matrix(runs: pd.DataFrame) -> np.ndarray:
    """The seed design's eleven columns, filled from what the benchmark has.

    Ids are integer codes (the seed's encoding); the task id distinguishes workload, precision and
    software (fairer to the seed than the workload alone).  Fields the benchmark lacks are 0,
    as the seed's form defaults would be; gpu_memory_required_gb takes the GPU's memory.
    """

    def ids(s):
        return pd.factorize(s.astype(str))[0].astype(float)

    task = runs["workload"].astype(str) + "|" + runs["precision"].astype(str) + "|" + runs["software"].astype(str)
    zero = np.zeros(len(runs))
    cols = {
        "task_type_id": ids(task),
        "input_size_mb": zero,
        "output_size_mb": zero,
        "memory_required_gb": zero,
        "cpu_cores_required": zero,
        "gpu_memory_required_gb": runs["gpu_memory_gb"].fillna(0).to_numpy(float),
        "is_batch_processing": zero + 1,
        "platform_id": ids(runs["platform"]),
        "gpu_type_id": ids(runs["gpu_type"]),
        "cpu_type_id": ids(runs["cpu_type"]),
        "network_speed_mbps": zero,
    }
    return np.column_stack([cols[c] for c in SEED_COLUMNS])


CURVE_LEVELS = (0.5, 0.7, 0.8, 0.9, 0.95)


def _inside(pred: pd.DataFrame, actual: np.ndarray) -> np.ndarray:
    return (pred["lower_s"].to_numpy(float) <= actual) & (actual <= pred["upper_s"].to_numpy(float))


def _one_gpu(args: tuple[str, pd.DataFrame, bool]) -> dict:
    from threadpoolctl import threadpool_limits

    gpu, runs, baseline = args
    with threadpool_limits(1):  # the workers share two cores: no OpenMP oversubscription
        train = runs.loc[runs["gpu_type"] != gpu]
        test = runs.loc[runs["gpu_type"] == gpu]
        actual = test["execution_time_s"].to_numpy(float)
        t0 = time.perf_counter()
        model = PerformancePredictor(confidence=CONFIDENCE, random_state=0).fit(train)
        fit_s = time.perf_counter() - t0
        pred = model.predict_frame(test)
        ape = np.abs(pred["predicted_time_s"].to_numpy(float) - actual) / actual
        inside = (pred["lower_s"].to_numpy(float) <= actual) & (actual <= pred["upper_s"].to_numpy(float))
        # the same model's intervals at other nominal levels (no refit): the calibration curve
        inside_at = (
            {
                level: int(_inside(model.with_confidence(level).predict_frame(test), actual).sum())
                for level in CURVE_LEVELS
            }
            if model.calibrated_levels()
            else {}
        )
        # The same runs asked as a user who leaves fields out: the stated rules fill them in.
        hidden = {}
        for name, blank in (("precision", {"precision": None, "software": None}), ("batch", {"batch_size": np.nan})):
            asked = model.predict_frame(test.assign(**blank))
            hidden[f"{name}_ape"] = np.abs(asked["predicted_time_s"].to_numpy(float) - actual) / actual
            hidden[f"{name}_inside"] = int(_inside(asked, actual).sum())
        out = {
            **hidden,
            "gpu": gpu,
            "n": len(test),
            "ape": float(np.median(ape)),
            "coverage": float(inside.mean()),
            "inside": int(inside.sum()),
            "fit_s": fit_s,
            "inside_at": inside_at,
            "bases": pred["basis"].value_counts().to_dict(),
            "methods": pred["method"].value_counts().to_dict(),
        }
        if baseline:
            from sklearn.ensemble import RandomForestRegressor

            X = seed_matrix(runs)
            is_test = (runs["gpu_type"] == gpu).to_numpy(bool)
            forest = RandomForestRegressor(n_estimators=100, random_state=0, n_jobs=1)
            forest.fit(X[~is_test], runs["execution_time_s"].to_numpy(float)[~is_test])
            per_tree = np.stack([t.predict(X[is_test]) for t in forest.estimators_])
            point = per_tree.mean(axis=0)
            lo, hi = np.quantile(per_tree, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2], axis=0)
            seed_in = (lo <= actual) & (actual <= hi)
            out.update(
                seed_ape=float(np.median(np.abs(point - actual) / actual)),
                seed_coverage=float(seed_in.mean()),
                seed_inside=int(seed_in.sum()),
            )
        return out


ANCHOR_GPUS = ["RTX 3090", "A100 PCIe 40GB", "V100 SXM2 16GB"]  # a GPU a user plausibly owns


def _one_workload(args: tuple[str, pd.DataFrame]) -> list[dict]:
    from threadpoolctl import threadpool_limits

    workload, runs = args
    out = []
    with threadpool_limits(1):
        model = PerformancePredictor(confidence=CONFIDENCE, random_state=0).fit(runs.loc[runs["workload"] != workload])
        held = runs.loc[runs["workload"] == workload]
        for (precision, software), group in held.groupby(["precision", "software"]):
            candidates = group.loc[(group["gpu_count"] == 1) & group["gpu_type"].isin(ANCHOR_GPUS)]
            if candidates.empty:
                continue
            anchor = candidates.sort_values("gpu_type").iloc[[0]]
            rest = group.loc[group["gpu_type"] != anchor["gpu_type"].iloc[0]]
            pred = model.predict_frame(rest, anchors=anchor)
            actual = rest["execution_time_s"].to_numpy(float)
            ape = np.abs(pred["predicted_time_s"].to_numpy(float) - actual) / actual
            inside = (pred["lower_s"].to_numpy(float) <= actual) & (actual <= pred["upper_s"].to_numpy(float))
            out.append(
                {
                    "workload": workload,
                    "precision": precision,
                    "software": software,
                    "anchor": anchor["gpu_type"].iloc[0],
                    "n": len(rest),
                    "ape": float(np.median(ape)),
                    "inside": int(inside.sum()),
                    "model_share": float((pred["method"] == "model").mean()),
                }
            )
    return out


def one_anchor_report(runs: pd.DataFrame, jobs: int) -> None:
    work = [(w, runs) for w in sorted(runs["workload"].unique())]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            parts = list(pool.map(_one_workload, work))
    else:
        parts = [_one_workload(w) for w in work]
    table = pd.DataFrame([r for part in parts for r in part])
    print()
    print("one anchor run of an unseen workload (leave-one-workload-out):")
    for _, r in table.iterrows():
        print(
            f"  {r['workload']:<19} {r['precision']:<9} {r['software']:<12} anchor {r['anchor']:<15} "
            f"{int(r['n']):>4} runs  median APE {r['ape']:.3f}  cover90 {r['inside'] / r['n']:.2f}"
        )
    print(
        f"  median over groups of median APE {table['ape'].median():.3f}, mean {table['ape'].mean():.3f}; "
        f"90% interval coverage {table['inside'].sum() / table['n'].sum():.3f} of {int(table['n'].sum())} runs; "
        f"share labelled model {np.average(table['model_share'], weights=table['n']):.2f}"
    )


def future_report(runs: pd.DataFrame) -> bool:
    """Fit on the v0 table only; predict the runs of the GPUs that first appear in v1."""
    version = runs["software"].astype(str).str.split("_").str[0]
    old = runs.loc[version == "v0"]
    new_gpus = sorted(set(runs.loc[version == "v1", "gpu_type"]) - set(old["gpu_type"]))
    held = runs.loc[(version == "v1") & runs["gpu_type"].isin(new_gpus)].reset_index(drop=True)
    model = PerformancePredictor(random_state=0, n_threads=1).fit(old)
    pred = model.predict_frame(held)
    actual = held["execution_time_s"].to_numpy(float)
    ape = np.abs(pred["predicted_time_s"].to_numpy(float) / actual - 1.0)
    inside = _inside(pred, actual)
    per_gpu = pd.DataFrame({"gpu": held["gpu_type"], "ape": ape, "inside": inside}).groupby("gpu")
    print()
    print(f"future hardware: fitted on the v0 table ({len(old)} runs), predicting {len(held)} v1 runs of")
    for gpu, part in per_gpu:
        print(
            f"  {gpu:<22} {len(part):>4} runs  median APE {part['ape'].median():.3f}  "
            f"cover90 {part['inside'].mean():.2f}"
        )
    med = float(np.median(ape))
    cov = float(np.mean(inside))
    bases = pred["basis"].value_counts().to_dict()
    print(f"  all: median APE {med:.3f} {verdict(med <= 0.12)} (target <= 0.12); 90% coverage {cov:.3f} "
          f"{verdict(0.87 <= cov <= 0.93)} (target 0.87-0.93); bases {bases}")  # fmt: skip
    return med <= 0.12 and 0.87 <= cov <= 0.93


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="gpu_benchmarks.csv (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    parser.add_argument("--gpus", nargs="*", help="only hold out these GPU models (default: all)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the seed forest")
    parser.add_argument(
        "--one-anchor", action="store_true", help="also score one user anchor run of an unseen workload (11 more fits)"
    )
    parser.add_argument(
        "--future", action="store_true", help="also fit on the v0 table and predict the GPUs new in v1 (one more fit)"
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    runs = load_lambda_benchmarks(args.data)
    gpus = sorted(runs["gpu_type"].unique())
    if args.gpus:
        unknown = sorted(set(args.gpus) - set(gpus))
        if unknown:
            parser.error(f"--gpus: not in the data: {', '.join(unknown)}")
        gpus = [g for g in gpus if g in set(args.gpus)]
    print(
        f"data: {args.data}: {len(runs)} runs, {runs['gpu_type'].nunique()} GPU models; "
        f"leave-one-GPU-model-out over {len(gpus)} GPUs, {args.jobs} worker(s)"
    )
    work = [(g, runs, not args.no_baseline) for g in gpus]
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(_one_gpu, work))
    else:
        results = [_one_gpu(w) for w in work]
    table = pd.DataFrame(results).set_index("gpu")

    print()
    header = f"{'held-out GPU':<22} {'runs':>5} {'median APE':>11} {'cover90':>8}"
    if not args.no_baseline:
        header += f" | {'seed APE':>9} {'seed cover':>10}"
    print(header)
    for gpu, r in table.iterrows():
        line = f"{gpu:<22} {int(r['n']):>5} {r['ape']:>11.3f} {r['coverage']:>8.2f}"
        if not args.no_baseline:
            line += f" | {r['seed_ape']:>9.3f} {r['seed_coverage']:>10.2f}"
        print(line)

    n_total = int(table["n"].sum())
    med, mean = float(table["ape"].median()), float(table["ape"].mean())
    pooled = float(table["inside"].sum() / n_total)
    per_gpu_cov = float(table["coverage"].mean())
    bases: dict[str, int] = {}
    for b in table["bases"]:
        for k, v in b.items():
            bases[k] = bases.get(k, 0) + int(v)
    print()
    print(f"predictor (transfer model): median over GPUs of median APE = {med:.3f}, mean over GPUs = {mean:.3f}")
    print(f"  90% interval coverage: {pooled:.3f} of {n_total} held-out runs (mean per GPU {per_gpu_cov:.3f})")
    print(f"  how the runs were predicted: {bases}; mean fit time {table['fit_s'].mean():.1f} s")
    with_curve = table[table["inside_at"].map(bool)]
    if len(with_curve):
        n_curve = int(with_curve["n"].sum())
        observed = [sum(d[level] for d in with_curve["inside_at"]) / n_curve for level in CURVE_LEVELS]
        print(
            "  calibration (nominal -> observed coverage): "
            + ", ".join(f"{level:.2f} -> {o:.3f}" for level, o in zip(CURVE_LEVELS, observed, strict=True))
        )
    for name, left_out in (("precision", "precision and software"), ("batch", "batch size")):
        apes = np.concatenate(table[f"{name}_ape"].to_list())
        print(
            f"  asked with the {left_out} left out (the stated rule fills them): median APE "
            f"{np.median(apes):.3f}, 90% interval coverage {table[f'{name}_inside'].sum() / n_total:.3f}"
        )
    if not args.no_baseline:
        s_pooled = float(table["seed_inside"].sum() / n_total)
        print(
            f"seed design (forest on ids, raw seconds): median APE {table['seed_ape'].median():.3f}, "
            f"mean {table['seed_ape'].mean():.3f}, tree-spread '90%' coverage {s_pooled:.3f}"
        )
    print()
    print("targets:")
    print(f"  median over GPUs <= {TARGET_MEDIAN_APE:.2f}: {med:.3f} {verdict(med <= TARGET_MEDIAN_APE)}")
    print(f"  mean over GPUs   <= {TARGET_MEAN_APE:.2f}: {mean:.3f} {verdict(mean <= TARGET_MEAN_APE)}")
    lo, hi = TARGET_COVERAGE
    print(f"  coverage in [{lo:.2f}, {hi:.2f}]: {pooled:.3f} {verdict(lo <= pooled <= hi)}")
    if args.one_anchor:
        one_anchor_report(runs, args.jobs)
    if args.future:
        future_report(runs)
    print(f"elapsed {time.perf_counter() - started:.0f} s")
    ok = med <= TARGET_MEDIAN_APE and mean <= TARGET_MEAN_APE and lo <= pooled <= hi
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
