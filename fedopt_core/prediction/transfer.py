"""The three tree models behind a fitted prediction: how each is fitted and how they estimate.

* transfer: ``log t_target - log t_anchor`` for two runs of one workload context at one GPU
  count, from the two GPUs' hardware facts and what is known of the workload;
* scaling: how log time moves with the GPU count on one GPU;
* direct: log time from hardware facts and the workload's level under other precisions/software.

:func:`estimate` combines them per target row (measured, transfer, transfer+scaling, direct);
rows it cannot estimate get NaN and basis "" (the heuristics take those).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from fedopt_core.prediction import features
from fedopt_core.prediction.calibration import SPARSE_ANCHORS
from fedopt_core.prediction.heuristics import HEURISTIC_COUNT_EXPONENT, HEURISTIC_PEAK_EXPONENT
from fedopt_core.prediction.stats import join_keys, weighted_median_and_mad
from fedopt_core.prediction.trees import fit_gbm

__all__ = [
    "MASK_DESCRIPTOR_FRACTION",
    "estimate",
    "fit_direct",
    "fit_scaling",
    "fit_transfer",
    "same_count_pairs",
    "workload_levels",
]

#: Share of training pairs whose workload sensitivities are hidden (see fit_transfer).
MASK_DESCRIPTOR_FRACTION = 0.2  # hardware facts only: the scale of the cold prior
TRANSFER_FEATURE_NAMES = features.TRANSFER_FEATURE_NAMES


def _gbm(params: dict[str, Any], random_state: int) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(random_state=random_state, **params)


def same_count_pairs(pool: pd.DataFrame, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    key = np.where(usable, pool["ctx"].astype(object) + "\x1e" + pool["gpu_count"].astype(str), None)
    t, a = join_keys(key, key)
    keep = pool["gpu_key"].to_numpy(object)[t] != pool["gpu_key"].to_numpy(object)[a]
    return t[keep], a[keep]


def fit_transfer(
    pool: pd.DataFrame, mask: np.ndarray, desc: pd.DataFrame, seed: int, params: dict[str, Any], max_pairs: int
) -> Any:
    """The model of log t_target - log t_anchor for pairs of runs of one context at one GPU count."""
    t, a = same_count_pairs(pool, mask)
    if len(t) < 30:
        return None
    if len(t) > max_pairs:
        pick = np.random.default_rng(seed).choice(len(t), max_pairs, replace=False)
        t, a = t[pick], a[pick]
    X = features.transfer_features(pool.iloc[t], pool.iloc[a], desc)
    y = pool["y"].to_numpy(float)[t] - pool["y"].to_numpy(float)[a]
    # A workload measured a few times has no sensitivities yet: hide them in some pairs so
    # the model learns what to do without them (instead of guessing a branch for NaN).
    hide = np.random.default_rng(seed + 1).random(len(X)) < MASK_DESCRIPTOR_FRACTION
    for name in ("ctx_slope_peak", "ctx_slope_bandwidth"):
        X[hide, TRANSFER_FEATURE_NAMES.index(name)] = np.nan
    return fit_gbm(_gbm(params, seed), X, y)


def fit_scaling(pool: pd.DataFrame, mask: np.ndarray, seed: int, params: dict[str, Any]) -> Any:
    """The model of how log time moves with the GPU count, on one GPU and context."""
    key = np.where(mask, pool["ctx"].astype(object) + "\x1e" + pool["gpu_key"].astype(str), None)
    t, s = join_keys(key, key)
    keep = pool["gpu_count"].to_numpy(float)[t] != pool["gpu_count"].to_numpy(float)[s]
    t, s = t[keep], s[keep]
    if len(t) < 30:
        return None
    X = features.scaling_features(pool.iloc[t], pool.iloc[s])
    y = pool["y"].to_numpy(float)[t] - pool["y"].to_numpy(float)[s]
    params = {**params, "max_leaf_nodes": 15, "max_iter": min(params["max_iter"], 100), "learning_rate": 0.1}
    return fit_gbm(_gbm(params, seed), X, y)


def workload_levels(pool: pd.DataFrame, desc: pd.DataFrame) -> np.ndarray:
    """Per pool row: mean level of the *other* contexts of its workload (NaN if none), i.e.
    what is known of a context from its workload's runs under other precisions/software."""
    level = desc["ctx_level"]
    sums = level.groupby(desc["workload_key"]).sum()
    counts = level.groupby(desc["workload_key"]).count()
    wk = pool["workload_key"].to_numpy(object)
    own = level.reindex(pool["ctx"].to_numpy(object)).to_numpy(float)
    tot = sums.reindex(wk).to_numpy(float)
    cnt = counts.reindex(wk).to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        others = np.where(np.isfinite(own), (tot - np.nan_to_num(own)) / (cnt - 1.0), tot / cnt)
    others[~np.isfinite(others)] = np.nan
    return others


def fit_direct(pool: pd.DataFrame, mask: np.ndarray, desc: pd.DataFrame, seed: int, params: dict[str, Any]) -> Any:
    """The model of log time from hardware facts and the workload's level in its other contexts."""
    others = workload_levels(pool, desc)
    ok = mask & np.isfinite(others)
    if ok.sum() < 30:
        return None
    X = features.direct_features(pool.loc[ok], others[ok])
    params = {
        **params,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 20,
        "max_iter": min(params["max_iter"], 100),
        "learning_rate": 0.1,
    }
    return fit_gbm(_gbm(params, seed), X, pool["y"].to_numpy(float)[ok] - direct_offset(pool.loc[ok]))


def direct_offset(rows: pd.DataFrame) -> np.ndarray:
    """The roofline-style part of a run's log time that the direct trees do not learn (half peak,
    half bandwidth, counts at ``HEURISTIC_COUNT_EXPONENT``), so a GPU faster than every measured
    one comes out faster: trees alone cannot extrapolate."""
    peak = np.nan_to_num(rows["log_peak_tflops"].to_numpy(float))
    bandwidth = np.nan_to_num(rows["log_memory_bandwidth"].to_numpy(float))
    count = np.nan_to_num(rows["log_gpu_count"].to_numpy(float))
    return (
        -(HEURISTIC_PEAK_EXPONENT * peak + (1 - HEURISTIC_PEAK_EXPONENT) * bandwidth) - HEURISTIC_COUNT_EXPONENT * count
    )


def estimate(
    targets: pd.DataFrame,
    pool: pd.DataFrame,
    models: Mapping[str, Any],
    desc: pd.DataFrame,
    mode: str = "auto",
    *,
    distance_weight: float = 1.0,
) -> dict[str, np.ndarray]:
    """Model estimates (log seconds per unit) for encoded targets.

    mode ``auto`` picks the best basis per row; ``transfer`` / ``transfer+scaling`` / ``direct``
    force one (for calibration).  Rows with no estimate get NaN and basis "".
    """
    n = len(targets)
    est = np.full(n, np.nan)
    mad = np.full(n, np.nan)
    n_anchor = np.zeros(n)
    n_configs = np.zeros(n)
    basis = np.full(n, "", dtype=object)
    t_ok = targets["known_hw"].to_numpy(bool) & targets["ctx"].notna().to_numpy(bool)
    p_ok = pool["known_hw"].to_numpy(bool) & np.isfinite(pool["y"].to_numpy(float))
    t_ctx = np.where(t_ok, targets["ctx"].to_numpy(object), None)
    p_ctx = np.where(p_ok, pool["ctx"].to_numpy(object), None)
    ti, ai = join_keys(t_ctx, p_ctx)
    if len(ti) and mode != "direct":
        same_gpu = targets["gpu_key"].to_numpy(object)[ti] == pool["gpu_key"].to_numpy(object)[ai]
        same_count = targets["gpu_count"].to_numpy(float)[ti] == pool["gpu_count"].to_numpy(float)[ai]
        if mode == "auto":
            # This very configuration was measured: its runs beat any transfer from other GPUs.
            exact = same_gpu & same_count
            t_ex, a_ex = ti[exact], ai[exact]
            est[t_ex] = pool["y"].to_numpy(float)[a_ex]
            mad[t_ex] = 0.0
            n_anchor[t_ex] = pool["n_runs"].to_numpy(float)[a_ex]
            n_configs[t_ex] = SPARSE_ANCHORS  # calibrated like a dense transfer: conservative
            basis[t_ex] = "measured"
            rest = ~np.isin(ti, t_ex)
            ti, ai, same_gpu, same_count = ti[rest], ai[rest], same_gpu[rest], same_count[rest]
        if mode in ("transfer", "transfer+scaling"):
            # calibration targets are themselves runs: never anchor a run on itself
            keep = ~(same_gpu & same_count)
            ti, ai, same_count = ti[keep], ai[keep], same_count[keep]
        has_same = np.bincount(ti[same_count], minlength=n) > 0
        if mode == "transfer+scaling":
            has_same[:] = False
            keep = ~same_count
            ti, ai, same_count = ti[keep], ai[keep], same_count[keep]
        use_a = same_count & has_same[ti]
        use_b = ~has_same[ti]
        if mode == "transfer":
            use_b[:] = False
        if models.get("transfer") is not None:
            out = (est, mad, n_anchor, n_configs, basis)
            _transfer_into(targets, pool, models, desc, ti[use_a], ai[use_a], False, out, "transfer", distance_weight)
            if models.get("scaling") is not None and use_b.any():
                _transfer_into(
                    targets, pool, models, desc, ti[use_b], ai[use_b], True, out, "transfer+scaling", distance_weight
                )
    if mode in ("auto", "direct") and models.get("direct") is not None:
        todo = np.flatnonzero(~np.isfinite(est) & targets["known_hw"].to_numpy(bool))
        if len(todo):
            levels = _target_workload_levels(targets.iloc[todo], desc, exclude_own=(mode == "direct"))
            has = np.isfinite(levels)
            rows = todo[has]
            if len(rows):
                X = features.direct_features(targets.iloc[rows], levels[has])
                # models saved before the offset existed predict the whole log time
                offset = direct_offset(targets.iloc[rows]) if models.get("direct_offset") else 0.0
                est[rows] = models["direct"].predict(X) + offset
                mad[rows] = 0.0
                basis[rows] = "direct"
    return {"est": est, "mad": mad, "n_anchor": n_anchor, "n_configs": n_configs, "basis": basis}


def _target_workload_levels(targets: pd.DataFrame, desc: pd.DataFrame, exclude_own: bool) -> np.ndarray:
    """Mean level of the workload's measured contexts (the target's own excluded if asked)."""
    ctx_workload = desc["workload_key"]
    level = desc["ctx_level"]
    sums = level.groupby(ctx_workload).sum()
    counts = level.groupby(ctx_workload).count()
    wk = targets["workload_key"].to_numpy(object)
    tot = sums.reindex(wk).to_numpy(float)
    cnt = counts.reindex(wk).to_numpy(float)
    if exclude_own:
        own = level.reindex(targets["ctx"].to_numpy(object)).to_numpy(float)
        tot = tot - np.nan_to_num(own)
        cnt = cnt - np.isfinite(own)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = tot / cnt
    out[~np.isfinite(out)] = np.nan
    return out


def _transfer_into(
    targets: pd.DataFrame,
    pool: pd.DataFrame,
    models: Mapping[str, Any],
    desc: pd.DataFrame,
    ti: np.ndarray,
    ai: np.ndarray,
    cross: bool,
    out: tuple[np.ndarray, ...],
    label: str,
    distance_weight: float,
) -> None:
    if len(ti) == 0:
        return
    est, mad, n_anchor, n_configs, basis = out
    T = targets.iloc[ti].reset_index(drop=True)
    A = pool.iloc[ai].reset_index(drop=True)
    if cross:
        # move the target to the anchor's count, transfer there, then scale the count back
        V = T.copy()
        V["log_gpu_count"] = A["log_gpu_count"].to_numpy(float)
        V["gpu_count"] = A["gpu_count"].to_numpy(float)
        V["log_batch_size"] = (
            T["log_batch_size"].to_numpy(float)
            - T["log_gpu_count"].to_numpy(float)
            + A["log_gpu_count"].to_numpy(float)
        )
        ratio = models["transfer"].predict(features.transfer_features(V, A, desc))
        ratio = ratio + models["scaling"].predict(features.scaling_features(T, V))
    else:
        ratio = models["transfer"].predict(features.transfer_features(T, A, desc))
    values = A["y"].to_numpy(float) + ratio
    weight = np.exp(-float(distance_weight) * features.hardware_distance(T, A))
    groups, inverse = np.unique(ti, return_inverse=True)
    med, spread, count = weighted_median_and_mad(inverse, values, weight, len(groups))
    est[groups] = med
    mad[groups] = spread
    n_anchor[groups] = np.bincount(inverse, weights=A["n_runs"].to_numpy(float), minlength=len(groups))
    n_configs[groups] = count
    basis[groups] = label
