"""PerformancePredictor: how long a task takes on each platform, with an honest interval.

How a prediction is made (the Habitat idea, applied to whole runs):

0. **Measured** (``basis="measured"``): this very configuration (workload context, GPU, count)
   was run before: the median of those runs.
1. **Transfer** (``basis="transfer"``).  When the same workload (same task type, precision
   class and software) has been measured on other GPUs at the same GPU count, each of those
   runs is an *anchor*.  A gradient-boosted model predicts ``log t_target - log t_anchor`` from
   the two GPUs' hardware facts and a few learned facts about the workload (how sensitive its
   time is to compute peak and bandwidth, its level, its usual batch per GPU).  The prediction
   is the weighted median of ``log t_anchor + ratio`` over the anchors, anchors on similar GPUs
   weighing more; their spread says how hard the row is.
2. **Transfer + scaling** (``basis="transfer+scaling"``): only other GPU counts were measured;
   the transfer happens at the anchor's count and a second model scales the count.
3. **Direct** (``basis="direct"``): the workload was measured only with another precision or
   software: a model of the time from hardware facts and the workload's level elsewhere.
4. **Heuristic** (``method="heuristic"``): no model applies (too few runs to fit one, a
   CPU-only or unknown GPU, a workload nobody measured).  Estimates from specification ratios or
   from the user's own anchor run, with a deliberately wide interval and a ``warning``.

Intervals are split-conformal on log time: residuals come from cross-validation grouped by GPU
model (so they measure the error on GPUs the model did not see), normalised by a per-row
difficulty ``sqrt(s_workload**2 + spread**2)``, and calibrated per basis.  Predictions resting
on fewer than ``SPARSE_ANCHORS`` anchors (typically the user's single run of a new workload)
have their own calibration, from folds grouped by *workload* where each held-out workload keeps
exactly one run as its anchor.

Persistence is a zip of JSON and ``.npz`` arrays loaded with ``allow_pickle=False`` and checked
against a SHA-256 in the manifest, so loading a file can never execute code.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import GroupKFold
from threadpoolctl import threadpool_limits

from fedopt_core import features, schema

__all__ = ["FORMAT_NAME", "ModelFormatError", "PerformancePredictor"]

FORMAT_NAME = "fedopt-performance-predictor"
FORMAT_VERSION = 1
_ALGORITHM = "transfer-gbm-1"

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
_HALF_WIDTH = {
    "spec-ratio": math.log(3.0),
    "same-gpu": math.log(1.5),
    "unknown-gpu": math.log(2.0),
    "cpu-runs": math.log(3.0),
    "cpu-from-gpu": math.log(10.0),
    "workload-prior": math.log(2.0),
    "cold-prior": math.log(100.0),
}
_REFERENCE_GPU = "A100 SXM4 80GB"
#: A measured configuration this many times slower or faster than the other GPUs' runs predict is listed as suspect.
SUSPECT_FACTOR = 5.0
#: Nominal levels whose conformal quantiles every fit keeps (see with_confidence).
CALIBRATED_LEVELS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99)
#: Share of training pairs whose workload sensitivities are hidden (see _fit_transfer).
MASK_DESCRIPTOR_FRACTION = 0.2  # hardware facts only: the scale of the cold prior

_OUTPUT_COLUMNS = ["predicted_time_s", "lower_s", "upper_s", "method", "basis", "n_anchor_runs", "warning"]
# The anchor table is stored in these run-schema columns (times per one work unit).
_ANCHOR_TEXT = ["task_type", "workload", "precision", "software", "gpu_type"]
_ANCHOR_NUM = ["gpu_count", "batch_size", "vcpus", "execution_time_s", "n_runs"]
TRANSFER_FEATURE_NAMES = features.TRANSFER_FEATURE_NAMES


#: The learned attributes a model file may set (anything else in a file is refused).
_SAVED_ATTRIBUTES = (
    "n_runs_", "n_skipped_", "skipped_reasons_", "n_anchor_configs_", "n_gpu_models_", "n_training_pairs_",
    "method_", "fallback_reason_", "model_version_", "feature_names_", "calibration_", "workload_scale_",
    "global_scale_", "suspects_",
)


class ModelFormatError(ValueError):
    """The bytes are not a fedopt predictor file (or were altered): refused, nothing executed."""


# =========================================================================== trees as arrays


class _Trees:
    """A fitted HistGradientBoostingRegressor as plain arrays (numeric features only).

    Predicting from arrays keeps saved models free of pickles and evaluates all rows and trees
    at once.  Leaves point to themselves so every row walks exactly ``depth`` steps.
    """

    def __init__(self, baseline: float, roots: np.ndarray, feature: np.ndarray, threshold: np.ndarray,
                 missing_left: np.ndarray, left: np.ndarray, right: np.ndarray, value: np.ndarray,
                 depth: int, n_features: int) -> None:
        self.baseline = float(baseline)
        self.roots = np.asarray(roots, dtype=np.int64)
        self.feature = np.asarray(feature, dtype=np.int64)
        self.threshold = np.asarray(threshold, dtype=np.float64)
        self.missing_left = np.asarray(missing_left, dtype=bool)
        self.left = np.asarray(left, dtype=np.int64)
        self.right = np.asarray(right, dtype=np.int64)
        self.value = np.asarray(value, dtype=np.float64)
        self.depth = int(depth)
        self.n_features = int(n_features)
        n = len(self.feature)
        for name in ("left", "right"):
            arr = getattr(self, name)
            if len(arr) != n or (n and (arr.min() < 0 or arr.max() >= n)):
                raise ModelFormatError(f"tree arrays: {name} indices out of range")
        if n and (self.feature.min() < 0 or self.feature.max() >= max(self.n_features, 1)):
            raise ModelFormatError("tree arrays: feature index out of range")
        if len(self.roots) and (self.roots.min() < 0 or self.roots.max() >= max(n, 1)):
            raise ModelFormatError("tree arrays: root index out of range")

    @classmethod
    def from_sklearn(cls, model: HistGradientBoostingRegressor) -> _Trees:
        feats, thr, miss, left, right, val, roots = [], [], [], [], [], [], []
        offset, depth = 0, 0
        for (predictor,) in model._predictors:  # one tree per iteration for a regressor
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise ValueError("categorical splits are not supported")
            leaf = nodes["is_leaf"].astype(bool)
            own = np.arange(len(nodes)) + offset
            roots.append(offset)
            feats.append(np.where(leaf, 0, nodes["feature_idx"]))
            thr.append(np.where(leaf, np.inf, nodes["num_threshold"]))
            miss.append(nodes["missing_go_to_left"].astype(bool))
            left.append(np.where(leaf, own, nodes["left"].astype(np.int64) + offset))
            right.append(np.where(leaf, own, nodes["right"].astype(np.int64) + offset))
            val.append(np.where(leaf, nodes["value"], 0.0))
            depth = max(depth, int(nodes["depth"].max()))
            offset += len(nodes)
        cat = (lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt))  # noqa: E731
        return cls(float(np.ravel(model._baseline_prediction)[0]), np.asarray(roots, np.int64),
                   cat(feats, np.int64), cat(thr, np.float64), cat(miss, bool), cat(left, np.int64),
                   cat(right, np.int64), cat(val, np.float64), depth, model.n_features_in_)

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected {self.n_features} feature columns, got {X.shape}")
        out = np.full(len(X), self.baseline)
        n_trees = len(self.roots)
        if n_trees == 0 or len(X) == 0:
            return out
        chunk = max(1, 500_000 // n_trees)  # bounds the (rows x trees) work arrays to ~4 MB each
        for start in range(0, len(X), chunk):
            block = X[start:start + chunk]
            rows = np.arange(len(block))[:, None]
            node = np.broadcast_to(self.roots, (len(block), n_trees)).copy()
            for _ in range(self.depth):
                x = block[rows, self.feature[node]]
                go_left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
                node = np.where(go_left, self.left[node], self.right[node])
            out[start:start + chunk] += self.value[node].sum(axis=1)
        return out

    def to_arrays(self, prefix: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {f"{prefix}.{k}": getattr(self, k)
                  for k in ("roots", "feature", "threshold", "missing_left", "left", "right", "value")}
        return arrays, {"baseline": self.baseline, "depth": self.depth, "n_features": self.n_features}

    @classmethod
    def from_arrays(cls, prefix: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> _Trees:
        try:
            parts = {k: arrays[f"{prefix}.{k}"]
                     for k in ("roots", "feature", "threshold", "missing_left", "left", "right", "value")}
            return cls(float(meta["baseline"]), depth=int(meta["depth"]), n_features=int(meta["n_features"]), **parts)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ModelFormatError):
                raise
            raise ModelFormatError(f"model file: tree {prefix!r} is incomplete ({exc})") from None


# =========================================================================== small vectorised helpers


def _weighted_median_and_mad(group: np.ndarray, value: np.ndarray, weight: np.ndarray,
                             n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group: weighted median of ``value``, weighted median absolute deviation, count."""
    med = np.full(n_groups, np.nan)
    mad = np.full(n_groups, np.nan)
    count = np.bincount(group, minlength=n_groups)
    if len(group) == 0:
        return med, mad, count
    med = _weighted_quantile_by_group(group, value, weight, n_groups, 0.5)
    mad = _weighted_quantile_by_group(group, np.abs(value - med[group]), weight, n_groups, 0.5)
    return med, mad, count


def _weighted_quantile_by_group(group: np.ndarray, value: np.ndarray, weight: np.ndarray,
                                n_groups: int, q: float) -> np.ndarray:
    order = np.lexsort((value, group))
    g, v, w = group[order], value[order], weight[order]
    total = np.bincount(g, weights=w, minlength=n_groups)
    cum = np.cumsum(w)
    start = np.concatenate([[0.0], np.cumsum(total)])[:-1]
    within = cum - start[g]
    reached = within >= q * total[g] - 1e-12
    out = np.full(n_groups, np.nan)
    # first position of each group where the cumulative weight reaches the quantile
    first = np.flatnonzero(reached & np.concatenate([[True], ~(reached[:-1] & (g[:-1] == g[1:]))]))
    out[g[first]] = v[first]
    return out


def _conformal_quantiles(scores: np.ndarray, confidence: float) -> tuple[float, float]:
    """Lower and upper split-conformal quantiles of signed scores (finite-sample corrected)."""
    s = np.sort(scores[np.isfinite(scores)])
    n = len(s)
    if n == 0:
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    hi_rank = min(n, math.ceil((n + 1) * (1.0 - alpha)))
    lo_rank = max(1, math.floor((n + 1) * alpha))
    return float(s[lo_rank - 1]), float(s[hi_rank - 1])


def _gbm(params: dict[str, Any], random_state: int) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(random_state=random_state, **params)


def _join(left_key: np.ndarray, right_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j) with left_key[i] == right_key[j] (keys not None), as index arrays."""
    lk = pd.DataFrame({"k": left_key, "i": np.arange(len(left_key))}).dropna(subset=["k"])
    rk = pd.DataFrame({"k": right_key, "j": np.arange(len(right_key))}).dropna(subset=["k"])
    m = lk.merge(rk, on="k", how="inner")
    return m["i"].to_numpy(np.int64), m["j"].to_numpy(np.int64)


def _collapse(encoded: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Repeated runs of one (workload context, GPU, count) -> one anchor (median time).

    Many near-identical cloud hosts would otherwise outvote everything else.
    """
    e = encoded.reset_index(drop=True)
    r = runs.reset_index(drop=True)
    has = e["ctx"].notna().to_numpy(bool) & np.isfinite(e["y"].to_numpy(float))
    e, r = e.loc[has], r.loc[has]
    if e.empty:
        return pd.DataFrame(columns=[*_ANCHOR_TEXT, *_ANCHOR_NUM])
    frame = pd.DataFrame({
        "ctx": e["ctx"].to_numpy(object),
        "gpu_key": e["gpu_key"].to_numpy(object),
        "gpu_count": np.nan_to_num(e["gpu_count"].to_numpy(float), nan=0.0),
        "y": e["y"].to_numpy(float),
        "log_batch": e["log_batch_size"].to_numpy(float),
        "log_vcpus": e["log_vcpus"].to_numpy(float),
        "gpu_type": np.where(e["known_hw"].to_numpy(bool), e["gpu_name"].to_numpy(object), r["gpu_type"].to_numpy(object)),
        **{c: r[c].to_numpy(object) for c in ("task_type", "workload", "precision", "software")},
    })
    g = frame.groupby(["ctx", "gpu_key", "gpu_count"], sort=True, dropna=False)
    out = g.agg(y=("y", "median"), log_batch=("log_batch", "median"), log_vcpus=("log_vcpus", "median"),
                n_runs=("y", "size"), gpu_type=("gpu_type", "first"), task_type=("task_type", "first"),
                workload=("workload", "first"), precision=("precision", "first"),
                software=("software", "first")).reset_index()
    return pd.DataFrame({
        **{c: out[c].astype(object).to_numpy() for c in _ANCHOR_TEXT},
        "gpu_count": out["gpu_count"].to_numpy(float),
        "batch_size": np.exp(out["log_batch"].to_numpy(float)),
        "vcpus": np.exp(out["log_vcpus"].to_numpy(float)),
        "execution_time_s": np.exp(out["y"].to_numpy(float)),
        "n_runs": out["n_runs"].to_numpy(float),
    })


def _encode_anchors(table: pd.DataFrame) -> pd.DataFrame:
    """Encoded anchor rows (times per one work unit)."""
    runs = schema.normalise_frame(table.assign(work_units=1.0))
    enc = features.encode(runs)
    enc["n_runs"] = table["n_runs"].to_numpy(float)
    return enc


def _clean_rows(rows: pd.DataFrame, *, require_outcome: bool) -> pd.DataFrame:
    """Validated, normalised rows in input order; the first bad value raises ValidationError."""
    if not isinstance(rows, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(rows).__name__}")
    raw = rows.reset_index(drop=True)
    good, errors = schema.validate_frame(raw, require_outcome=require_outcome)
    if errors:
        first = errors[0]
        pos = _first_bad_position(raw, first, require_outcome)
        where = f"row {pos}: " if pos is not None else ""
        raise schema.ValidationError(first.field, f"{where}{first.message}")
    return good


def _borrow_software(enc: pd.DataFrame, rows: pd.DataFrame, pool: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Rows that name no software version take the context of the same task type, workload and
    precision with the most measured runs (a benchmark's table version, a lab's container image).

    Without this a job described as "resnet50, fp16" matches none of the measured contexts, which
    all carry a version, and could only be predicted from hardware facts.  Returns the encoded rows
    and, per row, the software borrowed (None where nothing was borrowed).
    """
    borrowed = pd.Series([None] * len(enc), dtype=object)
    measured = pool.loc[np.isfinite(pool["y"].to_numpy(float)) & pool["ctx"].notna().to_numpy(bool)]
    if measured.empty:
        return enc, borrowed
    ctx = enc["ctx"]
    wanted = (rows["software"].isna().to_numpy(bool) & ctx.notna().to_numpy(bool)
              & ~ctx.isin(set(measured["ctx"])).to_numpy(bool))
    if not wanted.any():
        return enc, borrowed
    # A context key ends with its software; without one it is the shared prefix.
    runs = measured.groupby("ctx")["n_runs"].sum()
    prefix = runs.index.to_series().str.rsplit("\x1f", n=1).str[0] + "\x1f"
    table = pd.DataFrame({"ctx": runs.index, "prefix": prefix.to_numpy(object), "n": runs.to_numpy(float)})
    best = table.sort_values(["n", "ctx"], ascending=[False, False], kind="stable").drop_duplicates("prefix")
    choice = ctx[wanted].map(dict(zip(best["prefix"], best["ctx"])))
    found = choice.notna()
    rows_found = choice.index[found.to_numpy(bool)]
    if len(rows_found):
        enc = enc.copy()
        enc.loc[rows_found, "ctx"] = choice[found].to_numpy(object)
        borrowed.loc[rows_found] = choice[found].str.rsplit("\x1f", n=1).str[1].to_numpy(object)
    return enc, borrowed


def _add_notes(result: pd.DataFrame, where: np.ndarray, notes: pd.Series) -> None:
    """Set ``warning`` to ``notes`` on the rows ``where`` says, unless they already carry one."""
    if not where.any():
        return
    empty = result["warning"].isna().to_numpy(bool)
    result["warning"] = pd.Series(np.where(where & empty, notes.to_numpy(object), result["warning"].to_numpy(object)),
                                  dtype=object)


def _first_bad_position(raw: pd.DataFrame, error: schema.RowError, require_outcome: bool) -> int | None:
    for pos in range(len(raw)):  # only on the error path, to say which row
        _, errs = schema.validate_frame(raw.iloc[[pos]], require_outcome=require_outcome)
        if errs:
            return pos
    return None


#: A prediction resting on fewer distinct anchor configurations than this is "sparse" and has
#: its own, wider calibration (one anchor says nothing about how much anchors disagree).
SPARSE_ANCHORS = 3


def _tier(basis: np.ndarray, n_configs: np.ndarray) -> np.ndarray:
    transfer = np.isin(basis, ["transfer", "transfer+scaling"])
    sparse = transfer & (n_configs < SPARSE_ANCHORS)
    return np.where(sparse, basis.astype(str) + "/sparse", basis.astype(str)).astype(object)


def _has_tier(calibration: Mapping[str, Any], basis: str) -> bool:
    return basis in calibration or f"{basis}/sparse" in calibration


def _one_anchor_per_context(targets: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Row positions of one random run per context, preferring single-GPU runs."""
    order = rng.permutation(len(targets))
    frame = pd.DataFrame({"ctx": targets["ctx"].to_numpy(object)[order],
                          "multi": (targets["gpu_count"].to_numpy(float)[order] != 1.0), "pos": order})
    frame = frame.sort_values(["ctx", "multi"], kind="stable")
    return frame.drop_duplicates("ctx")["pos"].to_numpy(np.int64)


class _Residuals:
    """Out-of-fold residuals with what calibration needs (tier, spread, workload)."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def add(self, targets: pd.DataFrame, est: Mapping[str, np.ndarray], mode: str) -> None:
        ok = np.isfinite(est["est"]) & (est["basis"] != "")
        if mode != "auto":
            ok &= est["basis"] == mode
        # each anchor row stands for n_runs measured runs: the interval is for single runs
        rep = np.where(ok, targets["n_runs"].to_numpy(float), 0).astype(int)
        tier = _tier(est["basis"], est["n_configs"])
        self.parts.append(pd.DataFrame({
            "r": np.repeat(targets["y"].to_numpy(float) - est["est"], rep),
            "mad": np.repeat(np.nan_to_num(est["mad"]), rep),
            "workload": np.repeat(targets["workload_key"].to_numpy(object), rep),
            "tier": np.repeat(tier, rep),
        }))

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame({"r": [], "mad": [], "workload": [], "tier": []})
        return pd.concat(self.parts, ignore_index=True)


# =========================================================================== the predictor


class PerformancePredictor:
    """Predict execution time per (task, platform) row with a calibrated interval.

    Parameters (scikit-learn style: configuration only; learned attributes end in ``_``):

    confidence: nominal coverage of the interval (0.9 = a 90% interval).
    random_state: seeds the pair subsampling and the tree models.
    n_splits: GPU-grouped folds for calibration.
    max_pairs: cap on training pairs for the transfer model (fit time is linear in it).
    anchor_distance_weight: anchors on GPUs ``d`` apart (sum of |log ratios| of bandwidth,
        FP32 peak, SMs) weigh ``exp(-anchor_distance_weight * d)`` in the median.
    min_gpu_models: distinct GPU models with runs needed before a model is fitted.
    n_threads: OpenMP threads for fitting the tree models (None = the library default).  One
        is the default because on a shared, small machine several processes fitting with all
        cores each make OpenMP spin-wait and slow everyone down many times over.
    """

    def __init__(self, confidence: float = 0.9, random_state: int = 0, *, n_splits: int = 4,
                 max_pairs: int = 12000, max_iter: int = 200, learning_rate: float = 0.08,
                 max_leaf_nodes: int = 31, min_samples_leaf: int = 40,
                 anchor_distance_weight: float = 1.0, min_gpu_models: int = 3, n_threads: int | None = 1) -> None:
        self.confidence = confidence
        self.random_state = random_state
        self.n_splits = n_splits
        self.max_pairs = max_pairs
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.anchor_distance_weight = anchor_distance_weight
        self.min_gpu_models = min_gpu_models
        self.n_threads = n_threads

    def __repr__(self) -> str:
        state = f", fitted on {self.n_runs_} runs ({self.method_})" if hasattr(self, "n_runs_") else ""
        return f"PerformancePredictor(confidence={self.confidence}{state})"

    # ------------------------------------------------------------------ fitting

    def _params(self) -> dict[str, Any]:
        return {"max_iter": self.max_iter, "learning_rate": self.learning_rate,
                "max_leaf_nodes": self.max_leaf_nodes, "min_samples_leaf": self.min_samples_leaf,
                "l2_regularization": 1.0, "max_depth": 10}

    def _check_params(self) -> None:
        if not (0.0 < float(self.confidence) < 1.0):
            raise ValueError(f"confidence: {self.confidence!r} must be between 0 and 1")
        for name in ("n_splits", "max_pairs", "max_iter", "min_gpu_models"):
            if int(getattr(self, name)) < (2 if name == "n_splits" else 1):
                raise ValueError(f"{name}: {getattr(self, name)!r} is too small")

    def fit(self, runs: pd.DataFrame) -> PerformancePredictor:
        """Learn from measured runs (run schema).  Unsuccessful runs and rows without a valid
        positive finite ``execution_time_s`` are skipped and counted (``n_skipped_``)."""
        self._check_params()
        if not isinstance(runs, pd.DataFrame):
            raise TypeError(f"runs: expected a pandas DataFrame, got {type(runs).__name__}")
        raw = runs.reset_index(drop=True)
        good, errors = schema.validate_frame(raw, require_outcome=True)
        failed = ~good["success"].to_numpy(bool)
        good = good.loc[~failed].reset_index(drop=True)
        self.n_skipped_ = int(len(raw) - len(good))
        reasons = pd.Series([e.field for e in errors], dtype=object).value_counts()
        self.skipped_reasons_ = {str(k): int(v) for k, v in reasons.items()}
        if failed.any():
            self.skipped_reasons_["success"] = int(failed.sum())
        self.n_runs_ = int(len(good))
        enc = features.encode(good)
        table = _collapse(enc, good)
        self.anchors_ = table
        self._pool_cache = None
        pool = self._pool(None)
        self.n_anchor_configs_ = int(len(table))
        usable = pool["known_hw"].to_numpy(bool) & pool["ctx"].notna().to_numpy(bool)
        gpu_groups = pool.loc[usable, "gpu_key"].to_numpy(object)
        self.n_gpu_models_ = int(len(set(gpu_groups)))
        pairs_t, pairs_a = self._same_count_pairs(pool, usable)
        self.n_training_pairs_ = int(len(pairs_t))
        self.transfer_ = self.scaling_ = self.direct_ = None
        self.importance_sample_ = None
        self._importances = None
        self.calibration_ = {}
        self.suspects_ = []
        self.workload_scale_ = {}
        self.feature_names_ = list(TRANSFER_FEATURE_NAMES)
        reason = None
        if self.n_gpu_models_ < max(self.min_gpu_models, 2):
            reason = (f"runs on {self.n_gpu_models_} known GPU model(s); at least "
                      f"{max(self.min_gpu_models, 2)} are needed to learn how time moves between GPUs")
        elif len(pairs_t) < 30:
            reason = f"only {len(pairs_t)} comparable run pairs (same workload, different GPU); at least 30 are needed"
        self.method_ = "heuristic" if reason else "model"
        self.fallback_reason_ = reason
        if reason is None:
            with threadpool_limits(limits=self.n_threads, user_api="openmp"):
                self._fit_models(pool, usable)
        self.model_version_ = self._version_tag()
        return self

    def _same_count_pairs(self, pool: pd.DataFrame, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = np.where(usable, pool["ctx"].astype(object) + "\x1e" + pool["gpu_count"].astype(str), None)
        t, a = _join(key, key)
        keep = pool["gpu_key"].to_numpy(object)[t] != pool["gpu_key"].to_numpy(object)[a]
        return t[keep], a[keep]

    def _fit_transfer(self, pool: pd.DataFrame, mask: np.ndarray, desc: pd.DataFrame, seed: int) -> Any:
        t, a = self._same_count_pairs(pool, mask)
        if len(t) < 30:
            return None
        if len(t) > self.max_pairs:
            pick = np.random.default_rng(seed).choice(len(t), self.max_pairs, replace=False)
            t, a = t[pick], a[pick]
        X = features.transfer_features(pool.iloc[t], pool.iloc[a], desc)
        y = pool["y"].to_numpy(float)[t] - pool["y"].to_numpy(float)[a]
        # A workload measured a few times has no sensitivities yet: hide them in some pairs so
        # the model learns what to do without them (instead of guessing a branch for NaN).
        hide = np.random.default_rng(seed + 1).random(len(X)) < MASK_DESCRIPTOR_FRACTION
        for name in ("ctx_slope_peak", "ctx_slope_bandwidth"):
            X[hide, TRANSFER_FEATURE_NAMES.index(name)] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _gbm(self._params(), seed).fit(X, y)

    def _fit_scaling(self, pool: pd.DataFrame, mask: np.ndarray, seed: int) -> Any:
        key = np.where(mask, pool["ctx"].astype(object) + "\x1e" + pool["gpu_key"].astype(str), None)
        t, s = _join(key, key)
        keep = pool["gpu_count"].to_numpy(float)[t] != pool["gpu_count"].to_numpy(float)[s]
        t, s = t[keep], s[keep]
        if len(t) < 30:
            return None
        X = features.scaling_features(pool.iloc[t], pool.iloc[s])
        y = pool["y"].to_numpy(float)[t] - pool["y"].to_numpy(float)[s]
        params = {**self._params(), "max_leaf_nodes": 15, "max_iter": min(self.max_iter, 100), "learning_rate": 0.1}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _gbm(params, seed).fit(X, y)

    @staticmethod
    def _workload_levels(pool: pd.DataFrame, desc: pd.DataFrame) -> np.ndarray:
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

    def _fit_direct(self, pool: pd.DataFrame, mask: np.ndarray, desc: pd.DataFrame, seed: int) -> Any:
        others = self._workload_levels(pool, desc)
        ok = mask & np.isfinite(others)
        if ok.sum() < 30:
            return None
        X = features.direct_features(pool.loc[ok], others[ok])
        params = {**self._params(), "max_leaf_nodes": 15, "min_samples_leaf": 20, "max_iter": min(self.max_iter, 100),
                  "learning_rate": 0.1}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _gbm(params, seed).fit(X, pool["y"].to_numpy(float)[ok])

    def _fit_models(self, pool: pd.DataFrame, usable: np.ndarray) -> None:
        seed = int(self.random_state)
        collected = _Residuals()
        cross_checks: list[pd.DataFrame] = []
        # 1. Folds grouped by GPU model: the error on GPUs the model never saw, with every
        #    other GPU's runs as anchors (the common case).
        groups = pool["gpu_key"].to_numpy(object)
        gpu_list = np.array(sorted(set(groups[usable])), dtype=object)
        splits = GroupKFold(n_splits=min(int(self.n_splits), len(gpu_list))).split(gpu_list, groups=gpu_list)
        for fold, (tr, te) in enumerate(splits):
            train = np.isin(groups, gpu_list[tr]) & usable
            held = np.isin(groups, gpu_list[te]) & usable
            sub = pool.loc[train].reset_index(drop=True)
            desc = features.workload_descriptors(sub)
            models = self._fit_all(sub, desc, seed + fold)
            targets = pool.loc[held].reset_index(drop=True)
            for mode in ("transfer", "transfer+scaling", "direct"):
                est = self._estimate(targets, sub, models, desc, mode=mode)
                collected.add(targets, est, mode)
                if mode != "direct":  # what the other GPUs say about each held-out configuration
                    cross_checks.append(pd.DataFrame({"anchor": np.flatnonzero(held), "est": est["est"],
                                                      "priority": 0 if mode == "transfer" else 1}))
            if fold == 0 and models["transfer"] is not None:
                self._keep_importance_sample(targets, sub, models["transfer"], desc, seed)
        # 2. Folds grouped by workload, one anchor run each: a workload the model never saw,
        #    measured once (the user's "I ran it on my GPU in T seconds").
        wk = pool["workload_key"].to_numpy(object)
        wl_list = np.array(sorted(set(wk[usable])), dtype=object)
        if len(wl_list) >= 2:
            rng = np.random.default_rng(seed)
            splits = GroupKFold(n_splits=min(3, len(wl_list))).split(wl_list, groups=wl_list)
            for fold, (tr, te) in enumerate(splits):
                train = np.isin(wk, wl_list[tr]) & usable
                held = np.isin(wk, wl_list[te]) & usable
                sub = pool.loc[train].reset_index(drop=True)
                models = self._fit_all(sub, features.workload_descriptors(sub), seed + 100 + fold, direct=False)
                targets = pool.loc[held].reset_index(drop=True)
                one = _one_anchor_per_context(targets, rng)
                anchors = targets.iloc[one].reset_index(drop=True)
                rest = targets.drop(index=one).reset_index(drop=True)
                desc = features.workload_descriptors(anchors)
                collected.add(rest, self._estimate(rest, anchors, models, desc, mode="auto"), "auto")
        self._calibrate(collected)
        self.suspects_ = self._suspects(pool, cross_checks)
        desc = features.workload_descriptors(pool)
        final = self._fit_all(pool, desc, seed, direct="direct" in self.calibration_)
        # Stored models are plain arrays (see _Trees): predictions never need the sklearn objects.
        as_trees = lambda m: None if m is None else _Trees.from_sklearn(m)  # noqa: E731
        self.transfer_ = as_trees(final["transfer"])
        self.scaling_ = as_trees(final["scaling"]) if _has_tier(self.calibration_, "transfer+scaling") else None
        self.direct_ = as_trees(final["direct"])

    def _fit_all(self, pool: pd.DataFrame, desc: pd.DataFrame, seed: int, direct: bool = True) -> dict[str, Any]:
        mask = np.ones(len(pool), bool)
        return {"transfer": self._fit_transfer(pool, mask, desc, seed),
                "scaling": self._fit_scaling(pool, mask, seed),
                "direct": self._fit_direct(pool, mask, desc, seed) if direct else None}

    def _calibrate(self, collected: _Residuals) -> None:
        """Conformal quantiles per tier (basis, and dense/sparse anchors) of normalised scores."""
        res = collected.frame()
        dense = res.loc[res["tier"] == "transfer"]
        base = dense if len(dense) else res
        glob = float(np.median(np.abs(base["r"]))) if len(base) else math.log(1.3)
        self.global_scale_ = max(glob, 1e-3)
        # Per-workload error scale, shrunk towards the global one (20 runs' worth of prior).
        prior = 20.0
        if len(dense):
            g = dense.assign(a=np.abs(dense["r"])).groupby("workload")["a"]
            scale = (g.median() * g.size() + self.global_scale_ * prior) / (g.size() + prior)
            self.workload_scale_ = {str(k): float(v) for k, v in scale.items()}
        self.calibration_ = {}
        for tier, part in res.groupby("tier"):
            if len(part) < 20:
                continue
            s = self._difficulty(part["workload"].to_numpy(object), part["mad"].to_numpy(float))
            r = part["r"].to_numpy(float)
            scores = r / s
            lo, hi = _conformal_quantiles(scores, float(self.confidence))
            # The same scores at other nominal levels, so with_confidence() needs no refit and the
            # Model page can draw nominal against observed coverage.
            levels = sorted(set(CALIBRATED_LEVELS) | {float(self.confidence)})
            self.calibration_[str(tier)] = {"lower": lo, "upper": hi, "n": int(len(r)),
                                            "median_abs_log_error": float(np.median(np.abs(r))),
                                            "levels": [[lv, *_conformal_quantiles(scores, lv)] for lv in levels]}

    def _suspects(self, pool: pd.DataFrame, cross_checks: list[pd.DataFrame]) -> list[dict[str, Any]]:
        """Measured configurations that the other GPUs' runs of the same workload contradict by more
        than SUSPECT_FACTOR (out of fold: the configuration's own GPU was held out).  Kept in the
        training set -- they may be real -- but listed so someone checks them (a unit mix-up, a
        throughput logged as a time, a failed run logged as a success)."""
        if not cross_checks:
            return []
        checks = pd.concat(cross_checks, ignore_index=True)
        checks = checks[np.isfinite(checks["est"].to_numpy(float))]
        best = checks.sort_values(["anchor", "priority"], kind="stable").drop_duplicates("anchor")
        rows = best["anchor"].to_numpy(int)
        off = pool["y"].to_numpy(float)[rows] - best["est"].to_numpy(float)
        bad = np.abs(off) > math.log(SUSPECT_FACTOR)
        table = self.anchors_.iloc[rows[bad]]
        expected = np.exp(best["est"].to_numpy(float)[bad])
        out = pd.DataFrame({
            **{c: table[c].astype(object).where(table[c].notna(), None).to_numpy() for c in
               ("workload", "precision", "software", "gpu_type")},
            "gpu_count": table["gpu_count"].to_numpy(float),
            "n_runs": table["n_runs"].to_numpy(float),
            "measured_s_per_unit": table["execution_time_s"].to_numpy(float),
            "expected_s_per_unit": expected,
            "factor": np.exp(off[bad]),
        })
        out = out.iloc[np.argsort(-np.abs(off[bad]), kind="stable")]
        return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in out.to_dict("records")]

    def _difficulty(self, workload_keys: np.ndarray, mad: np.ndarray) -> np.ndarray:
        scale = pd.Series(workload_keys, dtype=object).map(self.workload_scale_).astype(float)
        s = scale.fillna(getattr(self, "global_scale_", None) or math.log(1.3)).to_numpy(float)
        return np.sqrt(s ** 2 + np.nan_to_num(mad) ** 2)

    def _keep_importance_sample(self, targets: pd.DataFrame, pool: pd.DataFrame, model: Any,
                                desc: pd.DataFrame, seed: int) -> None:
        """Pairs from GPUs the fold's model never saw, for permutation importance."""
        key_t = targets["ctx"].astype(object) + "\x1e" + targets["gpu_count"].astype(str)
        key_a = np.where(pool["known_hw"].to_numpy(bool), pool["ctx"].astype(object) + "\x1e" + pool["gpu_count"].astype(str), None)
        t, a = _join(key_t.to_numpy(object), key_a)
        if len(t) < 20:
            return
        if len(t) > 1000:
            pick = np.random.default_rng(seed).choice(len(t), 1000, replace=False)
            t, a = t[pick], a[pick]
        X = features.transfer_features(targets.iloc[t], pool.iloc[a], desc)
        y = targets["y"].to_numpy(float)[t] - pool["y"].to_numpy(float)[a]
        self.importance_sample_ = {"X": X, "y": y, "model": _Trees.from_sklearn(model)}

    # ------------------------------------------------------------------ estimation

    def _pool(self, anchors: pd.DataFrame | None) -> pd.DataFrame:
        """Encoded anchor pool: the fitted runs plus (collapsed) user anchors."""
        if getattr(self, "_pool_cache", None) is None:
            table = getattr(self, "anchors_", None)
            if table is None or len(table) == 0:
                table = pd.DataFrame(columns=[*_ANCHOR_TEXT, *_ANCHOR_NUM])
            self._pool_cache = _encode_anchors(table)
        pool = self._pool_cache
        if anchors is None or len(anchors) == 0:
            return pool
        good = _clean_rows(anchors, require_outcome=True)
        good = good.loc[good["success"].to_numpy(bool)].reset_index(drop=True)
        extra = _collapse(features.encode(good), good)
        if extra.empty:
            return pool
        base = self.anchors_ if getattr(self, "anchors_", None) is not None else extra.iloc[:0]
        # Where the user measured the same configuration, their run replaces the stored one.
        both = pd.concat([extra, base], ignore_index=True)
        ekey = features.encode(schema.normalise_frame(both.assign(work_units=1.0)))
        dup = pd.DataFrame({"c": ekey["ctx"], "g": ekey["gpu_key"], "n": both["gpu_count"]}).duplicated(keep="first")
        return _encode_anchors(both.loc[~dup.to_numpy(bool)].reset_index(drop=True))

    def _estimate(self, targets: pd.DataFrame, pool: pd.DataFrame, models: Mapping[str, Any],
                  desc: pd.DataFrame, mode: str = "auto") -> dict[str, np.ndarray]:
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
        ti, ai = _join(t_ctx, p_ctx)
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
                self._transfer_into(targets, pool, models, desc, ti[use_a], ai[use_a], False, out, "transfer")
                if models.get("scaling") is not None and use_b.any():
                    self._transfer_into(targets, pool, models, desc, ti[use_b], ai[use_b], True, out, "transfer+scaling")
        if mode in ("auto", "direct") and models.get("direct") is not None:
            todo = np.flatnonzero(~np.isfinite(est) & targets["known_hw"].to_numpy(bool))
            if len(todo):
                levels = self._target_workload_levels(targets.iloc[todo], desc, exclude_own=(mode == "direct"))
                has = np.isfinite(levels)
                rows = todo[has]
                if len(rows):
                    X = features.direct_features(targets.iloc[rows], levels[has])
                    est[rows] = models["direct"].predict(X)
                    mad[rows] = 0.0
                    basis[rows] = "direct"
        return {"est": est, "mad": mad, "n_anchor": n_anchor, "n_configs": n_configs, "basis": basis}

    def _target_workload_levels(self, targets: pd.DataFrame, desc: pd.DataFrame, exclude_own: bool) -> np.ndarray:
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

    def _transfer_into(self, targets: pd.DataFrame, pool: pd.DataFrame, models: Mapping[str, Any],
                       desc: pd.DataFrame, ti: np.ndarray, ai: np.ndarray, cross: bool,
                       out: tuple[np.ndarray, ...], label: str) -> None:
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
            V["log_batch_size"] = (T["log_batch_size"].to_numpy(float) - T["log_gpu_count"].to_numpy(float)
                                   + A["log_gpu_count"].to_numpy(float))
            ratio = models["transfer"].predict(features.transfer_features(V, A, desc))
            ratio = ratio + models["scaling"].predict(features.scaling_features(T, V))
        else:
            ratio = models["transfer"].predict(features.transfer_features(T, A, desc))
        values = A["y"].to_numpy(float) + ratio
        weight = np.exp(-float(self.anchor_distance_weight) * features.hardware_distance(T, A))
        groups, inverse = np.unique(ti, return_inverse=True)
        med, spread, count = _weighted_median_and_mad(inverse, values, weight, len(groups))
        est[groups] = med
        mad[groups] = spread
        n_anchor[groups] = np.bincount(inverse, weights=A["n_runs"].to_numpy(float), minlength=len(groups))
        n_configs[groups] = count
        basis[groups] = label

    # ------------------------------------------------------------------ prediction

    def _models(self) -> dict[str, _Trees | None]:
        return {"transfer": getattr(self, "transfer_", None), "scaling": getattr(self, "scaling_", None),
                "direct": getattr(self, "direct_", None)}

    def predict_frame(self, rows: pd.DataFrame, anchors: pd.DataFrame | None = None) -> pd.DataFrame:
        """One prediction per row of ``rows`` (task + platform fields), in order.

        Columns: ``predicted_time_s``, ``lower_s``, ``upper_s`` (the ``confidence`` interval),
        ``method`` ("model" | "heuristic"), ``basis`` (how: measured, transfer, transfer+scaling, direct,
        spec-ratio, same-gpu, unknown-gpu, cpu-runs, cpu-from-gpu, workload-prior, cold-prior),
        ``n_anchor_runs`` (measured runs behind it) and ``warning`` (None when all is well).

        ``anchors``: extra measured runs (run schema) used like training runs, e.g. the user's
        own run of this workload on another GPU.  Bad values raise ``schema.ValidationError``
        naming the field and row.
        """
        clean = _clean_rows(rows, require_outcome=False)
        n = len(clean)
        if n == 0:
            return pd.DataFrame({c: pd.Series(dtype=float if c.endswith("_s") or c == "n_anchor_runs" else object)
                                 for c in _OUTPUT_COLUMNS})
        enc = features.encode(clean)
        pool = self._pool(anchors)
        enc, borrowed = _borrow_software(enc, clean, pool)
        # Rows that differ only in things the model ignores (platform name, price) share one estimate.
        key_cols = ["ctx", "gpu_key", "gpu_count", "log_batch_size", "log_vcpus", "precision_class",
                    "task_training", "task_inference"]
        codes, first = self._dedupe(enc[key_cols])
        uniq = enc.iloc[first].reset_index(drop=True)
        out = self._predict_unique(uniq, pool)
        units = enc["work_units"].to_numpy(float)
        result = pd.DataFrame({
            "predicted_time_s": np.exp(out["log_pred"][codes]) * units,
            "lower_s": np.exp(out["log_lower"][codes]) * units,
            "upper_s": np.exp(out["log_upper"][codes]) * units,
            # object dtype keeps None as None (pandas would infer a string dtype and use NaN)
            "method": pd.Series(out["method"][codes], dtype=object),
            "basis": pd.Series(out["basis"][codes], dtype=object),
            "n_anchor_runs": out["n_anchor"][codes].astype(float),
            "warning": pd.Series(out["warning"][codes], dtype=object),
        })
        # Notes for rows that have no warning of their own (the first one found is kept).
        _add_notes(result, borrowed.notna().to_numpy(bool),
                   "no software version given: compared with the runs under " + borrowed.astype(str))
        _add_notes(result, enc["gpu_matched"].to_numpy(object) == "fuzzy",
                   "GPU name matched approximately to " + enc["gpu_name"].astype(str))
        result.index = rows.index
        return result

    @staticmethod
    def _dedupe(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Codes of identical rows (NaN equals NaN) and the first row of each, vectorised."""
        key = np.zeros(len(frame), dtype=np.int64)
        for column in frame.columns:  # mixed-radix key, re-factorised so it never overflows
            codes, uniques = pd.factorize(frame[column], use_na_sentinel=False)
            key = pd.factorize(key * (len(uniques) + 1) + codes)[0].astype(np.int64)
        codes, uniques = pd.factorize(key)
        first = np.full(len(uniques), len(codes), dtype=np.int64)
        np.minimum.at(first, codes, np.arange(len(codes)))
        return codes, first

    def _predict_unique(self, T: pd.DataFrame, pool: pd.DataFrame) -> dict[str, np.ndarray]:
        n = len(T)
        log_pred = np.full(n, np.nan)
        lower = np.full(n, np.nan)
        upper = np.full(n, np.nan)
        method = np.full(n, "heuristic", dtype=object)
        basis = np.full(n, "", dtype=object)
        n_anchor = np.zeros(n)
        warning = np.full(n, None, dtype=object)
        models = self._models()
        if getattr(self, "method_", "heuristic") == "model":
            desc = features.workload_descriptors(pool)
            est = self._estimate(T, pool, models, desc, mode="auto")
            done = np.isfinite(est["est"])
            tiers = _tier(est["basis"], est["n_configs"])
            tiers[tiers == "measured"] = "transfer"
            for b in set(tiers[done]):
                rows = done & (tiers == b)
                cal = self.calibration_.get(b)
                if cal is None and b.endswith("/sparse"):
                    cal = self._sparse_fallback(b)
                if cal is None:
                    continue
                s = self._difficulty(T["workload_key"].to_numpy(object)[rows], est["mad"][rows])
                log_pred[rows] = est["est"][rows]
                lower[rows] = est["est"][rows] + min(cal["lower"], 0.0) * s
                upper[rows] = est["est"][rows] + max(cal["upper"], 0.0) * s
                method[rows] = "model"
                basis[rows] = est["basis"][rows]
                n_anchor[rows] = est["n_anchor"][rows]
        todo = ~np.isfinite(log_pred)
        if todo.any():
            h = self._heuristic(T.loc[todo].reset_index(drop=True), pool)
            idx = np.flatnonzero(todo)
            log_pred[idx], lower[idx], upper[idx] = h["est"], h["lower"], h["upper"]
            basis[idx], n_anchor[idx], warning[idx] = h["basis"], h["n_anchor"], h["warning"]
        return {"log_pred": log_pred, "log_lower": lower, "log_upper": upper, "method": method,
                "basis": basis, "n_anchor": n_anchor, "warning": warning}

    def _sparse_fallback(self, tier: str) -> dict[str, float] | None:
        """Too few sparse calibration runs: the dense quantiles, doubled (a documented guess)."""
        dense = self.calibration_.get(tier.split("/")[0])
        if dense is None:
            return None
        return {"lower": 2.0 * dense["lower"], "upper": 2.0 * dense["upper"]}

    # ------------------------------------------------------------------ heuristics

    def _heuristic(self, T: pd.DataFrame, pool: pd.DataFrame) -> dict[str, np.ndarray]:
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
        why = getattr(self, "fallback_reason_", None) or "no predictor has been fitted"

        def fill(rows: np.ndarray, values: np.ndarray, spread: np.ndarray, half: float, label: str,
                 message: str | np.ndarray, anchors: np.ndarray | None = None) -> None:
            est[rows] = values
            width = np.sqrt(half ** 2 + np.nan_to_num(spread) ** 2) if np.ndim(spread) else half
            lo[rows] = values - width
            hi[rows] = values + width
            basis[rows] = label
            warn[rows] = message
            if anchors is not None:
                n_anchor[rows] = anchors

        def aggregate(ti: np.ndarray, values: np.ndarray, weights: np.ndarray, rows_mask: np.ndarray):
            groups, inv = np.unique(ti, return_inverse=True)
            med, mad, _ = _weighted_median_and_mad(inv, values, weights, len(groups))
            runs = np.bincount(inv, weights=pool["n_runs"].to_numpy(float)[aj_all[rows_mask]], minlength=len(groups))
            return groups, med, mad, runs

        ti_all, aj_all = _join(t_ctx, p_ctx)
        same_key = T["gpu_key"].to_numpy(object)[ti_all] == pool["gpu_key"].to_numpy(object)[aj_all]
        p_known = pool["known_hw"].to_numpy(bool)[aj_all]
        p_cpu = pool["is_cpu"].to_numpy(bool)[aj_all]
        dlc = np.nan_to_num(T["log_gpu_count"].to_numpy(float)[ti_all] - pool["log_gpu_count"].to_numpy(float)[aj_all])

        # 1. Same GPU measured for this workload (e.g. a GPU missing from the catalogue): its runs, count-scaled.
        m = same_key & ~is_cpu[ti_all]
        if m.any():
            vals = pool["y"].to_numpy(float)[aj_all[m]] - HEURISTIC_COUNT_EXPONENT * dlc[m]
            g, med, mad, runs = aggregate(ti_all[m], vals, np.ones(m.sum()), m)
            msg = np.where(known[g], f"no fitted model ({why}); scaled from runs on the same GPU",
                           "GPU not in the catalogue; estimate from earlier runs on the same GPU")
            fill(g, med, mad, _HALF_WIDTH["same-gpu"], "same-gpu", msg, runs)

        # 2. Known GPU, workload measured on other known GPUs: specification ratios.
        todo = ~np.isfinite(est)
        m = todo[ti_all] & known[ti_all] & p_known & ~same_key
        if m.any():
            t, a = ti_all[m], aj_all[m]
            ratio = -(HEURISTIC_PEAK_EXPONENT * (T["log_peak_tflops"].to_numpy(float)[t] - pool["log_peak_tflops"].to_numpy(float)[a])
                      + (1 - HEURISTIC_PEAK_EXPONENT) * (T["log_memory_bandwidth"].to_numpy(float)[t]
                                                         - pool["log_memory_bandwidth"].to_numpy(float)[a]))
            vals = pool["y"].to_numpy(float)[a] + np.nan_to_num(ratio) - HEURISTIC_COUNT_EXPONENT * dlc[m]
            w = np.exp(-features.hardware_distance(T.iloc[t], pool.iloc[a]))
            g, med, mad, runs = aggregate(t, vals, w, m)
            fill(g, med, mad, _HALF_WIDTH["spec-ratio"], "spec-ratio",
                 f"no fitted model for this case ({why}); scaled from measured runs by specification ratios", runs)

        # 3. CPU-only platform.
        todo = ~np.isfinite(est)
        m = todo[ti_all] & is_cpu[ti_all] & p_cpu
        if m.any():
            t, a = ti_all[m], aj_all[m]
            dv = np.nan_to_num(T["log_vcpus"].to_numpy(float)[t] - pool["log_vcpus"].to_numpy(float)[a])
            g, med, mad, runs = aggregate(t, pool["y"].to_numpy(float)[a] - dv, np.ones(m.sum()), m)
            fill(g, med, mad, _HALF_WIDTH["cpu-runs"], "cpu-runs",
                 "CPU-only platform: from earlier CPU runs of this workload, scaled by vCPUs", runs)
        todo = ~np.isfinite(est)
        m = todo[ti_all] & is_cpu[ti_all] & p_known
        if m.any():
            t, a = ti_all[m], aj_all[m]
            vals = pool["y"].to_numpy(float)[a] + pool["log_gpu_count"].to_numpy(float)[a] + math.log(HEURISTIC_CPU_SLOWDOWN)
            g, med, mad, runs = aggregate(t, vals, np.ones(m.sum()), m)
            fill(g, med, mad, _HALF_WIDTH["cpu-from-gpu"], "cpu-from-gpu",
                 f"CPU-only platform: assumed {HEURISTIC_CPU_SLOWDOWN:g}x slower than one GPU; no CPU run of this workload", runs)

        # 4. GPU unknown to the catalogue, workload measured elsewhere: the range of measured GPUs.
        todo = ~np.isfinite(est)
        m = todo[ti_all] & ~known[ti_all] & ~is_cpu[ti_all] & p_known
        if m.any():
            t, a = ti_all[m], aj_all[m]
            vals = pool["y"].to_numpy(float)[a] - HEURISTIC_COUNT_EXPONENT * dlc[m]
            g, med, mad, runs = aggregate(t, vals, np.ones(m.sum()), m)
            lo_q = _weighted_quantile_by_group(np.unique(t, return_inverse=True)[1], vals, np.ones(m.sum()), len(g), 0.0)
            hi_q = _weighted_quantile_by_group(np.unique(t, return_inverse=True)[1], vals, np.ones(m.sum()), len(g), 1.0)
            est[g] = med
            lo[g] = lo_q - _HALF_WIDTH["unknown-gpu"]
            hi[g] = hi_q + _HALF_WIDTH["unknown-gpu"]
            basis[g] = "unknown-gpu"
            n_anchor[g] = runs
            warn[g] = ("GPU " + T["gpu_key"].astype(str).str.lstrip("?").to_numpy(object)[g]
                       + " is not in the GPU catalogue: the interval spans every GPU this workload was measured on")

        # 5. Nothing measured for this workload: a prior from the other workloads, or the cold prior.
        todo = np.flatnonzero(~np.isfinite(est))
        if len(todo):
            self._prior_into(T, pool, todo, est, lo, hi, basis, warn)
        return {"est": est, "lower": lo, "upper": hi, "basis": basis, "warning": warn, "n_anchor": n_anchor}

    def _prior_into(self, T: pd.DataFrame, pool: pd.DataFrame, rows: np.ndarray, est: np.ndarray, lo: np.ndarray,
                    hi: np.ndarray, basis: np.ndarray, warn: np.ndarray) -> None:
        sub = T.iloc[rows]
        ref = features.hardware_facts([_REFERENCE_GPU])
        ref_peak = features.compute_peak(ref, np.array(["half"]))[0]
        peak = sub["log_peak_tflops"].to_numpy(float)
        bw = sub["log_memory_bandwidth"].to_numpy(float)
        hw_adj = -(HEURISTIC_PEAK_EXPONENT * (peak - ref_peak)
                   + (1 - HEURISTIC_PEAK_EXPONENT) * (bw - ref["log_memory_bandwidth"].to_numpy(float)[0]))
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
            lo[rows] = est[rows] - (centre - q_lo) - _HALF_WIDTH["workload-prior"]
            hi[rows] = est[rows] + (q_hi - centre) + _HALF_WIDTH["workload-prior"]
            basis[rows] = "workload-prior"
            warn[rows] = ("no measured run of this workload: the time is a prior from other workloads; "
                          "log one run (or pass it as an anchor) for a real prediction")
        else:
            est[rows] = math.log(NOMINAL_SECONDS_PER_UNIT) + hw_adj + count_adj
            lo[rows] = est[rows] - _HALF_WIDTH["cold-prior"]
            hi[rows] = est[rows] + _HALF_WIDTH["cold-prior"]
            basis[rows] = "cold-prior"
            warn[rows] = ("no measured run of this workload, and too few of others to judge: only the relative "
                          "speed of platforms comes from GPU specs; the absolute time is a placeholder. "
                          "Log one run (or pass it as an anchor).")
        unknown = ~sub["known_hw"].to_numpy(bool) & ~sub["is_cpu"].to_numpy(bool)
        if unknown.any():
            r = rows[unknown]
            lo[r] -= _HALF_WIDTH["unknown-gpu"]
            hi[r] += _HALF_WIDTH["unknown-gpu"]
            warn[r] = warn[r] + "; GPU not in the catalogue, speed unknown"

    # ------------------------------------------------------------------ importances

    def feature_importances(self, n_repeats: int = 5) -> pd.DataFrame:
        """Permutation importance of the transfer model's features on held-out GPUs.

        Measured on pairs whose target GPU the fold's model never saw (the first GPU-grouped
        calibration fold): the increase in mean absolute error of the log time ratio when one
        feature's column is shuffled.  Columns: feature, importance, std (over repeats).
        """
        self._require_fitted()
        if self._importances is not None and self._importances[0] == n_repeats:
            return self._importances[1].copy()
        sample = self.importance_sample_
        if sample is None:
            frame = pd.DataFrame({"feature": self.feature_names_, "importance": np.nan, "std": np.nan})
        else:
            X, y, model = sample["X"], sample["y"], sample["model"]
            base = np.mean(np.abs(model.predict(X) - y))
            rng = np.random.default_rng(self.random_state)
            imp = np.zeros((X.shape[1], n_repeats))
            for j in range(X.shape[1]):  # one column at a time: bounded by the feature count
                for r in range(n_repeats):
                    Xp = X.copy()
                    Xp[:, j] = X[rng.permutation(len(X)), j]
                    imp[j, r] = np.mean(np.abs(model.predict(Xp) - y)) - base
            frame = pd.DataFrame({"feature": self.feature_names_, "importance": imp.mean(1), "std": imp.std(1)})
            frame = frame.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
        self._importances = (n_repeats, frame)
        return frame.copy()

    def calibrated_levels(self) -> list[float]:
        """Nominal levels :meth:`with_confidence` accepts without refitting."""
        self._require_fitted()
        tiers = list(self.calibration_.values())
        if not tiers:  # heuristic only: its intervals are fixed guesses, not calibrated at any level
            return []
        common = set.intersection(*({round(lv[0], 6) for lv in t.get("levels", [])} for t in tiers))
        return sorted(common)

    def with_confidence(self, confidence: float) -> PerformancePredictor:
        """This fitted predictor with intervals at another nominal level (e.g. 0.5), no refit.

        The conformal quantiles for :data:`CALIBRATED_LEVELS` (and the fitted ``confidence``) are
        kept by :meth:`fit`; any other level raises ``ValueError`` naming the ones available.
        Heuristic intervals (no fitted model for a row) are not calibrated and stay as they are.
        """
        self._require_fitted()
        level = float(confidence)
        if not (0.0 < level < 1.0):
            raise ValueError(f"confidence: {confidence!r} must be between 0 and 1")
        if self.method_ != "model":
            raise ValueError(f"confidence: no fitted model ({self.fallback_reason_}); heuristic intervals are "
                             "fixed guesses, not calibrated at any level")
        calibration = {}
        for tier, cal in self.calibration_.items():
            match = [lv for lv in cal.get("levels", []) if abs(lv[0] - level) < 1e-9]
            if not match:
                raise ValueError(f"confidence: this model keeps calibration for {self.calibrated_levels()} only; "
                                 f"refit with confidence={level} for another level")
            calibration[tier] = {**cal, "lower": match[0][1], "upper": match[0][2]}
        clone = copy.copy(self)
        clone.confidence = level
        clone.calibration_ = calibration
        return clone

    def _require_fitted(self) -> None:
        if not hasattr(self, "n_runs_"):
            raise RuntimeError("PerformancePredictor is not fitted: call fit(runs) first")

    # ------------------------------------------------------------------ seed API

    def predict_execution_time(self, task_info: Mapping[str, Any], platform_info: Mapping[str, Any]) -> tuple[float, dict[str, Any]]:
        """One prediction: (seconds, info) with ``predicted_time_seconds``, ``confidence_interval``
        (lower, upper, confidence), ``model_version``, ``features_used``, ``method`` and more."""
        row = _one_row(task_info, platform_info)
        pred = self.predict_frame(row).iloc[0]
        return float(pred["predicted_time_s"]), self._info(pred)

    def _info(self, pred: pd.Series) -> dict[str, Any]:
        return {
            "predicted_time_seconds": float(pred["predicted_time_s"]),
            "confidence_interval": {"lower": float(pred["lower_s"]), "upper": float(pred["upper_s"]),
                                    "confidence": float(self.confidence)},
            "model_version": getattr(self, "model_version_", "unfitted"),
            "features_used": list(getattr(self, "feature_names_", TRANSFER_FEATURE_NAMES)),
            "method": str(pred["method"]),
            "basis": str(pred["basis"]),
            "n_anchor_runs": int(pred["n_anchor_runs"]),
            "warning": None if pred["warning"] is None or (isinstance(pred["warning"], float) and np.isnan(pred["warning"])) else str(pred["warning"]),
        }

    def get_optimal_platform(self, task_info: Mapping[str, Any], available_platforms: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The fastest platform for a task, with every platform's prediction (fastest first)."""
        if not available_platforms:
            return {"status": "error", "message": "No platforms available"}
        from fedopt_core.ranking import rank_platforms

        platforms = pd.DataFrame([dict(p) for p in available_platforms])
        _check_finite(task_info, "task")
        for p in available_platforms:
            _check_finite(p, "platform")
        ranked = rank_platforms(dict(task_info), platforms, objective="time", predictor=self)
        all_predictions = []
        for _, r in ranked.iterrows():  # output assembly for a short list, not the hot path
            pos = int(r["input_position"])
            all_predictions.append({"platform": dict(available_platforms[pos]),
                                    "predicted_time": float(r["predicted_time_s"]),
                                    "prediction_info": self._info(r)})
        best = all_predictions[0]
        return {"status": "success", "optimal_platform": best["platform"], "predicted_time": best["predicted_time"],
                "prediction_info": best["prediction_info"], "all_predictions": all_predictions}

    def rank_platforms(self, task: Mapping[str, Any], platforms: pd.DataFrame, objective: str = "time",
                       deadline_s: float | None = None, budget_usd: float | None = None,
                       anchors: pd.DataFrame | None = None) -> pd.DataFrame:
        """``fedopt_core.ranking.rank_platforms`` with this predictor."""
        from fedopt_core.ranking import rank_platforms

        return rank_platforms(task, platforms, objective=objective, deadline_s=deadline_s, budget_usd=budget_usd,
                              predictor=self, anchors=anchors)

    # ------------------------------------------------------------------ persistence

    def _version_tag(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps(self.get_params(), sort_keys=True).encode())
        table = getattr(self, "anchors_", None)
        if table is not None and len(table):
            h.update(pd.util.hash_pandas_object(table.astype(str), index=False).to_numpy().tobytes())
        return f"{_ALGORITHM}-{h.hexdigest()[:12]}"

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("confidence", "random_state", "n_splits", "max_pairs", "max_iter",
                                               "learning_rate", "max_leaf_nodes", "min_samples_leaf",
                                               "anchor_distance_weight", "min_gpu_models", "n_threads")}

    def to_bytes(self) -> bytes:
        """The fitted predictor as a zip of ``manifest.json`` + ``arrays.npz`` (no pickles)."""
        self._require_fitted()
        arrays: dict[str, np.ndarray] = {}
        trees: dict[str, Any] = {}
        for name in ("transfer_", "scaling_", "direct_"):
            model = getattr(self, name)
            if model is not None:
                arr, meta = model.to_arrays(name)
                arrays.update(arr)
                trees[name] = meta
        sample = self.importance_sample_
        if sample is not None:
            arr, meta = sample["model"].to_arrays("importance_model")
            arrays.update(arr)
            arrays["importance.X"] = sample["X"]
            arrays["importance.y"] = sample["y"]
            trees["importance_model"] = meta
        table = self.anchors_
        for c in _ANCHOR_NUM:
            arrays[f"anchors.{c}"] = table[c].to_numpy(float)
        anchors_text = {c: [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                            for v in table[c].tolist()] for c in _ANCHOR_TEXT}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        npz = buf.getvalue()
        manifest = {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "algorithm": _ALGORITHM,
            "params": self.get_params(), "arrays_sha256": hashlib.sha256(npz).hexdigest(),
            "trees": trees, "anchors_text": anchors_text,
            "attributes": {
                "n_runs_": self.n_runs_, "n_skipped_": self.n_skipped_,
                "skipped_reasons_": {str(k): int(v) for k, v in self.skipped_reasons_.items()},
                "n_anchor_configs_": self.n_anchor_configs_, "n_gpu_models_": self.n_gpu_models_,
                "n_training_pairs_": self.n_training_pairs_, "method_": self.method_,
                "fallback_reason_": self.fallback_reason_, "model_version_": self.model_version_,
                "feature_names_": list(self.feature_names_), "calibration_": self.calibration_,
                "workload_scale_": self.workload_scale_, "global_scale_": getattr(self, "global_scale_", None),
                "suspects_": list(getattr(self, "suspects_", [])),
            },
        }
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("manifest.json", json.dumps(manifest, sort_keys=True, allow_nan=True))
            zf.writestr("arrays.npz", npz)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes) -> PerformancePredictor:
        """Load what :meth:`to_bytes` wrote.  Anything else (a pickle, a damaged or altered file)
        raises :class:`ModelFormatError`; nothing in the payload is ever executed."""
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise ModelFormatError(f"model payload must be bytes, got {type(payload).__name__}")
        payload = bytes(payload)
        if not payload.startswith(b"PK\x03\x04"):
            kind = "a Python pickle" if payload[:1] == b"\x80" else "not a fedopt model file"
            raise ModelFormatError(f"refused model payload: {kind} (expected a {FORMAT_NAME} zip)")
        try:
            with zipfile.ZipFile(io.BytesIO(payload)) as zf:
                names = set(zf.namelist())
                if names != {"manifest.json", "arrays.npz"}:
                    raise ModelFormatError(f"refused model payload: unexpected members {sorted(names)}")
                manifest = json.loads(zf.read("manifest.json").decode("utf-8"))
                npz = zf.read("arrays.npz")
        except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError, KeyError) as exc:
            raise ModelFormatError(f"refused model payload: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
            raise ModelFormatError("refused model payload: not a fedopt predictor manifest")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ModelFormatError(f"unsupported model format version {manifest.get('format_version')!r}")
        if hashlib.sha256(npz).hexdigest() != manifest.get("arrays_sha256"):
            raise ModelFormatError("refused model payload: arrays do not match the manifest checksum (altered file)")
        try:
            with np.load(io.BytesIO(npz), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (ValueError, OSError) as exc:
            raise ModelFormatError(f"refused model payload: {exc}") from None
        if any(a.dtype == object for a in arrays.values()):
            raise ModelFormatError("refused model payload: object arrays")
        try:
            params = manifest["params"]
            self = cls(**{k: params[k] for k in cls().get_params() if k in params})
            attrs = manifest["attributes"]
            if not isinstance(attrs, dict):
                raise ModelFormatError("refused model payload: attributes are not a mapping")
            unexpected = sorted(set(attrs) - set(_SAVED_ATTRIBUTES))
            if unexpected:
                raise ModelFormatError(f"refused model payload: unexpected attribute(s) {unexpected}")
            for k, v in attrs.items():
                setattr(self, k, v)
            trees = manifest["trees"]
            for name in ("transfer_", "scaling_", "direct_"):
                setattr(self, name, _Trees.from_arrays(name, arrays, trees[name]) if name in trees else None)
            self.importance_sample_ = None
            if "importance_model" in trees:
                self.importance_sample_ = {"X": arrays["importance.X"], "y": arrays["importance.y"],
                                           "model": _Trees.from_arrays("importance_model", arrays, trees["importance_model"])}
            text = manifest["anchors_text"]
            table = pd.DataFrame({c: pd.Series(text[c], dtype=object) for c in _ANCHOR_TEXT})
            for c in _ANCHOR_NUM:
                table[c] = arrays[f"anchors.{c}"].astype(float)
            self.anchors_ = table
        except (KeyError, TypeError) as exc:
            raise ModelFormatError(f"refused model payload: missing {exc}") from None
        self._pool_cache = None
        self._importances = None
        return self

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_bytes` to ``path``; returns the path."""
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path

    @classmethod
    def load(cls, path: str | Path) -> PerformancePredictor:
        """Read a file written by :meth:`save` (never unpickles)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        return cls.from_bytes(path.read_bytes())


# =========================================================================== dict helpers


def _check_finite(info: Mapping[str, Any], what: str) -> None:
    for key, value in info.items():
        if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
            raise schema.ValidationError(str(key), f"must be a finite number (got {value!r} in the {what})")


def _one_row(task_info: Mapping[str, Any], platform_info: Mapping[str, Any]) -> pd.DataFrame:
    if not isinstance(task_info, Mapping) or not isinstance(platform_info, Mapping):
        raise TypeError("task_info and platform_info must be dicts")
    _check_finite(task_info, "task")
    _check_finite(platform_info, "platform")
    return pd.DataFrame([{**dict(task_info), **dict(platform_info)}])
