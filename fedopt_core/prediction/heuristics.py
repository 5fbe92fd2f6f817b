"""Estimates when no fitted model applies, each labelled by its basis and with a wide interval.

Bases, in the order they are tried: ``same-gpu`` (earlier runs on the same GPU, count-scaled),
``spec-ratio`` (runs on other GPUs scaled by datasheet ratios), ``cpu-runs`` / ``cpu-from-gpu``,
``unknown-gpu`` (a GPU missing from the catalogue: the range of measured GPUs), and for a workload
nobody measured ``workload-prior`` (where other workloads sit) or ``cold-prior`` (a placeholder).
Every such row carries a ``warning``; every constant here is a documented assumption.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fedopt_core.catalog.gpu_names import partition_of
from fedopt_core.prediction import features
from fedopt_core.prediction.stats import join_keys, weighted_median_and_mad, weighted_quantile_by_group

__all__ = [
    "HALF_WIDTH",
    "HEURISTIC_COUNT_EXPONENT",
    "HEURISTIC_CPU_SLOWDOWN",
    "HEURISTIC_PEAK_EXPONENT",
    "NOMINAL_SECONDS_PER_UNIT",
    "add_notes",
    "heuristic_estimates",
    "say_partitions",
]

# --- heuristic constants (used only when no fitted model applies; every such number is labelled)
#: Roofline-style exponents: time per unit ~ peak**-a * bandwidth**-(1-a) for an unknown workload.
HEURISTIC_PEAK_EXPONENT = 0.5
#: Data-parallel scaling: time per unit ~ gpu_count**-0.85 (imperfect scaling).
HEURISTIC_COUNT_EXPONENT = 0.85
#: How much slower a CPU-only machine is than one GPU when nothing was measured on CPUs.
HEURISTIC_CPU_SLOWDOWN = 30.0
#: The absolute scale with no measured run at all: a placeholder, never shown without a warning.
NOMINAL_SECONDS_PER_UNIT = 1e-3
#: Half-widths (log space) of the heuristic intervals.
HALF_WIDTH = {
    "spec-ratio": math.log(3.0),
    "same-gpu": math.log(1.5),
    "unknown-gpu": math.log(2.0),
    "cpu-runs": math.log(3.0),
    "cpu-from-gpu": math.log(10.0),
    "workload-prior": math.log(2.0),
    "cold-prior": math.log(100.0),
}
REFERENCE_GPU = "A100 SXM4 80GB"


def heuristic_estimates(T: pd.DataFrame, pool: pd.DataFrame, why: str) -> dict[str, np.ndarray]:
    """Estimates when no fitted model applies; each basis has its own wide interval."""
    n = len(T)
    est = np.full(n, np.nan)
    lo = np.full(n, np.nan)
    hi = np.full(n, np.nan)
    basis = np.full(n, "", dtype=object)
    warn = np.full(n, None, dtype=object)
    n_anchor = np.zeros(n)
    p_ok = np.isfinite(pool["y"].to_numpy(float))
    t_ctx = T["ctx"].to_numpy(object)
    p_ctx = np.where(p_ok, pool["ctx"].to_numpy(object), None)
    known = T["known_hw"].to_numpy(bool)
    is_cpu = T["is_cpu"].to_numpy(bool)

    def fill(
        rows: np.ndarray,
        values: np.ndarray,
        spread: np.ndarray,
        half: float,
        label: str,
        message: str | np.ndarray,
        anchors: np.ndarray | None = None,
    ) -> None:
        est[rows] = values
        width = np.sqrt(half**2 + np.nan_to_num(spread) ** 2) if np.ndim(spread) else half
        lo[rows] = values - width
        hi[rows] = values + width
        basis[rows] = label
        warn[rows] = message
        if anchors is not None:
            n_anchor[rows] = anchors

    def aggregate(
        ti: np.ndarray, values: np.ndarray, weights: np.ndarray, rows_mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        groups, inv = np.unique(ti, return_inverse=True)
        med, mad, _ = weighted_median_and_mad(inv, values, weights, len(groups))
        runs = np.bincount(inv, weights=pool["n_runs"].to_numpy(float)[aj_all[rows_mask]], minlength=len(groups))
        return groups, med, mad, runs

    ti_all, aj_all = join_keys(t_ctx, p_ctx)
    same_key = T["gpu_key"].to_numpy(object)[ti_all] == pool["gpu_key"].to_numpy(object)[aj_all]
    p_known = pool["known_hw"].to_numpy(bool)[aj_all]
    p_cpu = pool["is_cpu"].to_numpy(bool)[aj_all]
    dlc = np.nan_to_num(T["log_gpu_count"].to_numpy(float)[ti_all] - pool["log_gpu_count"].to_numpy(float)[aj_all])

    # 1. Same GPU measured for this workload (e.g. a GPU missing from the catalogue): its runs, count-scaled.
    m = same_key & ~is_cpu[ti_all]
    if m.any():
        vals = pool["y"].to_numpy(float)[aj_all[m]] - HEURISTIC_COUNT_EXPONENT * dlc[m]
        g, med, mad, runs = aggregate(ti_all[m], vals, np.ones(m.sum()), m)
        msg = np.where(
            known[g],
            f"no fitted model ({why}); scaled from runs on the same GPU",
            "GPU not in the catalogue; estimate from earlier runs on the same GPU",
        )
        fill(g, med, mad, HALF_WIDTH["same-gpu"], "same-gpu", msg, runs)

    # 2. Known GPU, workload measured on other known GPUs: specification ratios.
    todo = ~np.isfinite(est)
    m = todo[ti_all] & known[ti_all] & p_known & ~same_key
    if m.any():
        t, a = ti_all[m], aj_all[m]
        ratio = -(
            HEURISTIC_PEAK_EXPONENT
            * (T["log_peak_tflops"].to_numpy(float)[t] - pool["log_peak_tflops"].to_numpy(float)[a])
            + (1 - HEURISTIC_PEAK_EXPONENT)
            * (T["log_memory_bandwidth"].to_numpy(float)[t] - pool["log_memory_bandwidth"].to_numpy(float)[a])
        )
        vals = pool["y"].to_numpy(float)[a] + np.nan_to_num(ratio) - HEURISTIC_COUNT_EXPONENT * dlc[m]
        w = np.exp(-features.hardware_distance(T.iloc[t], pool.iloc[a]))
        g, med, mad, runs = aggregate(t, vals, w, m)
        fill(
            g,
            med,
            mad,
            HALF_WIDTH["spec-ratio"],
            "spec-ratio",
            f"no fitted model for this case ({why}); scaled from measured runs by specification ratios",
            runs,
        )

    # 3. CPU-only platform.
    todo = ~np.isfinite(est)
    m = todo[ti_all] & is_cpu[ti_all] & p_cpu
    if m.any():
        t, a = ti_all[m], aj_all[m]
        dv = np.nan_to_num(T["log_vcpus"].to_numpy(float)[t] - pool["log_vcpus"].to_numpy(float)[a])
        g, med, mad, runs = aggregate(t, pool["y"].to_numpy(float)[a] - dv, np.ones(m.sum()), m)
        fill(
            g,
            med,
            mad,
            HALF_WIDTH["cpu-runs"],
            "cpu-runs",
            "CPU-only platform: from earlier CPU runs of this workload, scaled by vCPUs",
            runs,
        )
    todo = ~np.isfinite(est)
    m = todo[ti_all] & is_cpu[ti_all] & p_known
    if m.any():
        t, a = ti_all[m], aj_all[m]
        vals = (
            pool["y"].to_numpy(float)[a] + pool["log_gpu_count"].to_numpy(float)[a] + math.log(HEURISTIC_CPU_SLOWDOWN)
        )
        g, med, mad, runs = aggregate(t, vals, np.ones(m.sum()), m)
        fill(
            g,
            med,
            mad,
            HALF_WIDTH["cpu-from-gpu"],
            "cpu-from-gpu",
            f"CPU-only platform: assumed {HEURISTIC_CPU_SLOWDOWN:g}x slower than one GPU; no CPU run of this workload",
            runs,
        )

    # 4. GPU unknown to the catalogue, workload measured elsewhere: the range of measured GPUs.
    todo = ~np.isfinite(est)
    m = todo[ti_all] & ~known[ti_all] & ~is_cpu[ti_all] & p_known
    if m.any():
        t, a = ti_all[m], aj_all[m]
        vals = pool["y"].to_numpy(float)[a] - HEURISTIC_COUNT_EXPONENT * dlc[m]
        g, med, mad, runs = aggregate(t, vals, np.ones(m.sum()), m)
        lo_q = weighted_quantile_by_group(np.unique(t, return_inverse=True)[1], vals, np.ones(m.sum()), len(g), 0.0)
        hi_q = weighted_quantile_by_group(np.unique(t, return_inverse=True)[1], vals, np.ones(m.sum()), len(g), 1.0)
        est[g] = med
        lo[g] = lo_q - HALF_WIDTH["unknown-gpu"]
        hi[g] = hi_q + HALF_WIDTH["unknown-gpu"]
        basis[g] = "unknown-gpu"
        n_anchor[g] = runs
        warn[g] = (
            "GPU "
            + T["gpu_key"].astype(str).str.lstrip("?").to_numpy(object)[g]
            + " is not in the GPU catalogue: the interval spans every GPU this workload was measured on"
        )

    # 5. Nothing measured for this workload: a prior from the other workloads, or the cold prior.
    todo = np.flatnonzero(~np.isfinite(est))
    if len(todo):
        _prior_into(T, pool, todo, est, lo, hi, basis, warn)
    return {"est": est, "lower": lo, "upper": hi, "basis": basis, "warning": warn, "n_anchor": n_anchor}


def _prior_into(
    T: pd.DataFrame,
    pool: pd.DataFrame,
    rows: np.ndarray,
    est: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    basis: np.ndarray,
    warn: np.ndarray,
) -> None:
    sub = T.iloc[rows]
    ref = features.hardware_facts([REFERENCE_GPU])
    ref_peak = features.compute_peak(ref, np.array(["half"]))[0]
    peak = sub["log_peak_tflops"].to_numpy(float)
    bw = sub["log_memory_bandwidth"].to_numpy(float)
    hw_adj = -(
        HEURISTIC_PEAK_EXPONENT * (peak - ref_peak)
        + (1 - HEURISTIC_PEAK_EXPONENT) * (bw - ref["log_memory_bandwidth"].to_numpy(float)[0])
    )
    hw_adj = np.where(sub["is_cpu"].to_numpy(bool), math.log(HEURISTIC_CPU_SLOWDOWN), np.nan_to_num(hw_adj))
    count_adj = -HEURISTIC_COUNT_EXPONENT * np.nan_to_num(sub["log_gpu_count"].to_numpy(float))
    levels = features.workload_descriptors(pool)["ctx_level"].to_numpy(float) if len(pool) else np.zeros(0)
    levels = levels[np.isfinite(levels)]
    if len(levels) >= 3:
        # Where this workload might sit, judged by the spread of the workloads measured so far
        # (their levels are on the mix of GPUs they ran on, roughly the reference class).
        centre = float(np.median(levels))
        q_lo, q_hi = np.quantile(levels, [0.05, 0.95])
        est[rows] = centre + hw_adj + count_adj
        lo[rows] = est[rows] - (centre - q_lo) - HALF_WIDTH["workload-prior"]
        hi[rows] = est[rows] + (q_hi - centre) + HALF_WIDTH["workload-prior"]
        basis[rows] = "workload-prior"
        warn[rows] = (
            "no measured run of this workload: the time is a prior from other workloads; "
            "log one run (or pass it as an anchor) for a real prediction"
        )
    else:
        est[rows] = math.log(NOMINAL_SECONDS_PER_UNIT) + hw_adj + count_adj
        lo[rows] = est[rows] - HALF_WIDTH["cold-prior"]
        hi[rows] = est[rows] + HALF_WIDTH["cold-prior"]
        basis[rows] = "cold-prior"
        warn[rows] = (
            "no measured run of this workload, and too few of others to judge: only the relative "
            "speed of platforms comes from GPU specs; the absolute time is a placeholder. "
            "Log one run (or pass it as an anchor)."
        )
    _say_other_task(sub, pool, rows, warn)
    unknown = ~sub["known_hw"].to_numpy(bool) & ~sub["is_cpu"].to_numpy(bool)
    if unknown.any():
        r = rows[unknown]
        lo[r] -= HALF_WIDTH["unknown-gpu"]
        hi[r] += HALF_WIDTH["unknown-gpu"]
        warn[r] = warn[r] + "; GPU not in the catalogue, speed unknown"


def _say_other_task(sub: pd.DataFrame, pool: pd.DataFrame, rows: np.ndarray, warn: np.ndarray) -> None:
    """Where the workload was measured only as the other task type (inference asked, training
    runs held), say so: those runs were not used as if they measured this task."""
    if not len(pool):
        return
    measured = pool.loc[np.isfinite(pool["y"].to_numpy(float)), "workload_key"].astype(str)
    split = measured.str.rsplit("\x1f", n=1)
    tasks_of = pd.Series(split.str[0].to_numpy(object)).groupby(split.str[-1].to_numpy(object)).unique()
    keys = sub["workload_key"].astype(str).str.rsplit("\x1f", n=1)
    for pos, (task, name) in enumerate(zip(keys.str[0], keys.str[-1], strict=True)):
        others = [t for t in tasks_of.get(name, []) if t and t != task] if name else []
        if others:
            warn[rows[pos]] = (
                f"only {' and '.join(sorted(others))} runs of this workload are measured, and a {task or 'untyped'} "
                "time is not predicted from them (the two are unrelated); " + warn[rows[pos]]
            )


def say_partitions(result: pd.DataFrame, gpu_type: pd.Series, partition: np.ndarray) -> None:
    """Rows on a MIG slice or vGPU profile say so first, whatever else their warning says: the
    estimate is for an unknown GPU, never for the whole GPU the name contains."""
    if not partition.any():
        return
    raw = gpu_type.astype(str).reset_index(drop=True)
    what = raw.map(lambda name: partition_of(name) or "partition")
    note = (
        raw + " is a " + what + ": a fraction of a GPU, which fedopt does not model, so it is not matched"
        " to the whole GPU; the estimate is for an unknown GPU"
    )
    old = result["warning"].astype(object).reset_index(drop=True)
    joined = np.where(old.isna(), note, note + "; " + old.astype(str))
    result["warning"] = pd.Series(np.where(partition, joined, old.to_numpy(object)), dtype=object, index=result.index)


def add_notes(result: pd.DataFrame, where: np.ndarray, notes: pd.Series, *, append: bool = False) -> None:
    """Set ``warning`` to ``notes`` on the rows ``where`` says, unless they already carry one
    (``append``: added after the warning they carry)."""
    if not where.any():
        return
    old = result["warning"].to_numpy(object)
    empty = result["warning"].isna().to_numpy(bool)
    text = notes.to_numpy(object)
    joined = np.where(empty, text, old.astype(str) + "; " + text.astype(str)) if append else np.where(empty, text, old)
    result["warning"] = pd.Series(np.where(where, joined, old), dtype=object)
