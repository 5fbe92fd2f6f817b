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
4. **Physics** (``basis="physics"``, ``"physics+anchors"``, :mod:`.physics`): a job described by
   model and mode (an LLM on T tokens): work over peak, times a learned efficiency, anchored on
   the workload's runs elsewhere; it replaces 1-3 unless this configuration was measured.
5. **Heuristic** (``method="heuristic"``): no model applies (too few runs to fit one, a
   CPU-only or unknown GPU, a workload nobody measured).  Estimates from specification ratios or
   from the user's own anchor run, with a deliberately wide interval and a ``warning``.

Intervals are split-conformal on log time: residuals come from cross-validation grouped by GPU
model (so they measure the error on GPUs the model did not see), normalised by a per-row
difficulty ``sqrt(s_workload**2 + spread**2)``, and calibrated per basis.  Predictions resting
on fewer than ``SPARSE_ANCHORS`` anchors (typically the user's single run of a new workload)
have their own calibration, from folds grouped by *workload* where each held-out workload keeps
exactly one run as its anchor.  Rows a stated rule completed (a missing batch size; a missing
precision and software) are calibrated on held-out runs with that field hidden and filled the same way.

Persistence (:mod:`.persistence`): JSON and ``.npz`` arrays, never a pickle.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold
from threadpoolctl import threadpool_limits

from fedopt_core import schema
from fedopt_core.errors import FedoptInputError, ModelFormatError
from fedopt_core.prediction import features, persistence
from fedopt_core.prediction.anchors import (
    ANCHOR_NUM,
    ANCHOR_TEXT,
    batch_rule_notes,
    borrow_software,
    collapse_runs,
    encode_anchors,
    fill_missing_batch,
    fill_missing_precision,
    one_anchor_per_context,
    precision_rule_notes,
    with_user_runs,
)
from fedopt_core.prediction.calibration import (
    BATCH_RULE_TIER,
    CALIBRATED_LEVELS,
    PRECISION_RULE_TIER,
    SPARSE_ANCHORS,
    Residuals,
    at_level,
    calibrate,
    difficulty,
    has_tier,
    rule_tiers,
    tier_of,
    tier_quantiles,
)
from fedopt_core.prediction.diagnostics import (
    SUSPECT_FACTOR,
    find_suspects,
    importance_sample,
    permutation_importances,
)
from fedopt_core.prediction.heuristics import add_notes, heuristic_estimates, say_partitions
from fedopt_core.prediction.physics import PhysicsModel, overlay, physics_rows
from fedopt_core.prediction.stats import dedupe_rows
from fedopt_core.prediction.transfer import estimate, fit_direct, fit_scaling, fit_transfer, same_count_pairs
from fedopt_core.prediction.trees import ArrayTrees

__all__ = ["CALIBRATED_LEVELS", "SPARSE_ANCHORS", "SUSPECT_FACTOR", "ModelFormatError", "PerformancePredictor"]

_OUTPUT_COLUMNS = ["predicted_time_s", "lower_s", "upper_s", "method", "basis", "n_anchor_runs", "warning"]
TRANSFER_FEATURE_NAMES = features.TRANSFER_FEATURE_NAMES


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
    n_threads: OpenMP threads for fitting (None = the library's default). One by default: on a
        small shared machine, processes fitting on all cores make OpenMP spin-wait.
    """

    def __init__(
        self,
        confidence: float = 0.9,
        random_state: int = 0,
        *,
        n_splits: int = 4,
        max_pairs: int = 12000,
        max_iter: int = 200,
        learning_rate: float = 0.08,
        max_leaf_nodes: int = 31,
        min_samples_leaf: int = 40,
        anchor_distance_weight: float = 1.0,
        min_gpu_models: int = 3,
        n_threads: int | None = 1,
    ) -> None:
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
        return {
            "max_iter": self.max_iter,
            "learning_rate": self.learning_rate,
            "max_leaf_nodes": self.max_leaf_nodes,
            "min_samples_leaf": self.min_samples_leaf,
            "l2_regularization": 1.0,
            "max_depth": 10,
        }

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
        table = collapse_runs(enc, good)
        self.anchors_ = table
        self._pool_cache = None
        pool = self._pool(None)
        self.n_anchor_configs_ = int(len(table))
        usable = pool["known_hw"].to_numpy(bool) & pool["ctx"].notna().to_numpy(bool)
        gpu_groups = pool.loc[usable, "gpu_key"].to_numpy(object)
        self.n_gpu_models_ = int(len(set(gpu_groups)))
        pairs_t, pairs_a = same_count_pairs(pool, usable)
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
            reason = (
                f"runs on {self.n_gpu_models_} known GPU model(s); at least "
                f"{max(self.min_gpu_models, 2)} are needed to learn how time moves between GPUs"
            )
        elif len(pairs_t) < 30:
            reason = f"only {len(pairs_t)} comparable run pairs (same workload, different GPU); at least 30 are needed"
        self.method_ = "heuristic" if reason else "model"
        self.fallback_reason_ = reason
        if reason is None:
            with threadpool_limits(limits=self.n_threads, user_api="openmp"):
                self._fit_models(pool, usable)
        self.physics_ = self._fit_physics(good)
        self.model_version_ = self._version_tag()
        return self

    def _fit_physics(self, good: pd.DataFrame) -> PhysicsModel | None:
        """The physics prior, learned from the described (LLM) runs; None when there are none."""
        described = good["mode"].notna() | good["model_params_b"].notna()
        if not described.any() or not physics_rows(good.loc[described])["applies"].any():
            return None
        model = PhysicsModel(confidence=self.confidence, random_state=int(self.random_state))
        with threadpool_limits(limits=self.n_threads, user_api="openmp"):
            model.fit(good)
        return model if model.efficiency_ is not None and model.calibration_ else None

    def _fit_models(self, pool: pd.DataFrame, usable: np.ndarray) -> None:
        seed = int(self.random_state)
        collected = Residuals()
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
                est = estimate(targets, sub, models, desc, mode, distance_weight=self.anchor_distance_weight)
                collected.add(targets, est, mode)
                if mode != "direct":  # what the other GPUs say about each held-out configuration
                    cross_checks.append(
                        pd.DataFrame(
                            {
                                "anchor": np.flatnonzero(held),
                                "est": est["est"],
                                "priority": 0 if mode == "transfer" else 1,
                            }
                        )
                    )
            self._collect_rules(collected, held, train, sub, models, desc)
            if fold == 0 and models["transfer"] is not None:
                self.importance_sample_ = importance_sample(targets, sub, models["transfer"], desc, seed)
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
                one = one_anchor_per_context(targets, rng)
                anchors = targets.iloc[one].reset_index(drop=True)
                rest = targets.drop(index=one).reset_index(drop=True)
                desc = features.workload_descriptors(anchors)
                collected.add(
                    rest, estimate(rest, anchors, models, desc, distance_weight=self.anchor_distance_weight), "auto"
                )
        self._calibrate(collected)
        self.suspects_ = find_suspects(pool, self.anchors_, cross_checks)
        desc = features.workload_descriptors(pool)
        final = self._fit_all(pool, desc, seed, direct="direct" in self.calibration_)

        # Stored models are plain arrays (see ArrayTrees): predictions never need the sklearn objects.
        def as_trees(model: Any) -> ArrayTrees | None:
            return None if model is None else ArrayTrees.from_sklearn(model)

        self.transfer_ = as_trees(final["transfer"])
        self.scaling_ = as_trees(final["scaling"]) if has_tier(self.calibration_, "transfer+scaling") else None
        self.direct_ = as_trees(final["direct"])
        self.direct_offset_ = True

    def _collect_rules(self, collected: Residuals, held: np.ndarray, train: np.ndarray, *fitted: Any) -> None:
        """Residuals of held-out runs predicted with a field hidden and filled by its rule: the batch
        size, then the precision and software."""
        sub, models, desc = fitted
        for hidden, rule_of, chosen_of, suffix in (
            ({"batch_size": np.nan}, fill_missing_batch, np.isfinite, BATCH_RULE_TIER),
            ({"precision": None, "software": None}, fill_missing_precision, pd.notna, PRECISION_RULE_TIER),
        ):
            filled, rule = rule_of(self.anchors_.loc[held].assign(**hidden), self.anchors_.loc[train])
            chosen = np.asarray(chosen_of(rule), bool)
            if chosen.any():
                targets = encode_anchors(filled.loc[chosen])
                est = estimate(targets, sub, models, desc, distance_weight=self.anchor_distance_weight)
                collected.add(targets, est, "auto", suffix=suffix)

    def _fit_all(self, pool: pd.DataFrame, desc: pd.DataFrame, seed: int, direct: bool = True) -> dict[str, Any]:
        mask = np.ones(len(pool), bool)
        params = self._params()
        return {
            "transfer": fit_transfer(pool, mask, desc, seed, params, self.max_pairs),
            "scaling": fit_scaling(pool, mask, seed, params),
            "direct": fit_direct(pool, mask, desc, seed, params) if direct else None,
            "direct_offset": True,
        }

    def _calibrate(self, collected: Residuals) -> None:
        self.global_scale_, self.workload_scale_, self.calibration_ = calibrate(collected.frame(), self.confidence)

    def _difficulty(self, workload_keys: np.ndarray, mad: np.ndarray) -> np.ndarray:
        return difficulty(workload_keys, mad, self.workload_scale_, getattr(self, "global_scale_", None))

    # ------------------------------------------------------------------ estimation

    def _pool(self, good: pd.DataFrame | None) -> pd.DataFrame:
        """Encoded anchor pool: the fitted runs plus (collapsed) user anchors, already validated."""
        if getattr(self, "_pool_cache", None) is None:
            table = getattr(self, "anchors_", None)
            if table is None or len(table) == 0:
                table = pd.DataFrame(columns=[*ANCHOR_TEXT, *ANCHOR_NUM])
            self._pool_cache = encode_anchors(table)
        pool = self._pool_cache
        if good is None or len(good) == 0:
            return pool
        extra = collapse_runs(features.encode(good), good)
        if extra.empty:
            return pool
        # The user's anchors are encoded once and put before the stored (already encoded) ones:
        # where they measured the same configuration, their run replaces the stored one.
        both = pd.concat([encode_anchors(extra), pool], ignore_index=True)
        dup = pd.DataFrame({"c": both["ctx"], "g": both["gpu_key"], "n": both["gpu_count"]}).duplicated(keep="first")
        return both.loc[~dup.to_numpy(bool)].reset_index(drop=True)

    # ------------------------------------------------------------------ prediction

    def _models(self) -> dict[str, ArrayTrees | None]:
        return {
            "transfer": getattr(self, "transfer_", None),
            "scaling": getattr(self, "scaling_", None),
            "direct": getattr(self, "direct_", None),
            "direct_offset": getattr(self, "direct_offset_", False),
        }

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
        clean = schema.validated_rows(rows, require_outcome=False)
        n = len(clean)
        if n == 0:
            return pd.DataFrame(
                {
                    c: pd.Series(dtype=float if c.endswith("_s") or c == "n_anchor_runs" else object)
                    for c in _OUTPUT_COLUMNS
                }
            )
        good = None  # the user's anchors, validated once for both paths
        if anchors is not None and len(anchors):
            good = schema.validated_rows(anchors, require_outcome=True)
            good = good.loc[good["success"].to_numpy(bool)].reset_index(drop=True)
        table = getattr(self, "anchors_", None)
        # The precision rule reads the user's runs too, so a workload logged since the last fit counts.
        clean, precision_rule = fill_missing_precision(clean, with_user_runs(table, good))
        clean, batch_rule = fill_missing_batch(clean, table)
        enc = features.encode(clean).assign(
            batch_rule=np.isfinite(batch_rule), precision_rule=pd.notna(precision_rule).astype(bool)
        )
        pool = self._pool(good)
        enc, borrowed = borrow_software(enc, clean, pool)
        # Rows that differ only in things the model ignores (platform name, price) share one estimate.
        key_cols = [
            "ctx",
            "gpu_key",
            "gpu_count",
            "log_batch_size",
            "log_vcpus",
            "precision_class",
            "task_training",
            "task_inference",
            "batch_rule",
            "precision_rule",
        ]
        codes, first = dedupe_rows(enc[key_cols])
        uniq = enc.iloc[first].reset_index(drop=True)
        out = self._predict_unique(uniq, pool)
        units = enc["work_units"].to_numpy(float)
        result = pd.DataFrame(
            {
                "predicted_time_s": np.exp(out["log_pred"][codes]) * units,
                "lower_s": np.exp(out["log_lower"][codes]) * units,
                "upper_s": np.exp(out["log_upper"][codes]) * units,
                # object dtype keeps None as None (pandas would infer a string dtype and use NaN)
                "method": pd.Series(out["method"][codes], dtype=object),
                "basis": pd.Series(out["basis"][codes], dtype=object),
                "n_anchor_runs": out["n_anchor"][codes].astype(float),
                "warning": pd.Series(out["warning"][codes], dtype=object),
            }
        )
        # Notes for rows that have no warning of their own (the first one found is kept).
        add_notes(
            result,
            borrowed.notna().to_numpy(bool),
            "no software version given: compared with the runs under " + borrowed.astype(str),
        )
        add_notes(result, pd.notna(precision_rule), precision_rule_notes(precision_rule), append=True)
        add_notes(result, np.isfinite(batch_rule), batch_rule_notes(batch_rule), append=True)
        add_notes(
            result,
            enc["gpu_matched"].to_numpy(object) == "fuzzy",
            "GPU name matched approximately to " + enc["gpu_name"].astype(str),
        )
        overlay(result, clean, getattr(self, "physics_", None), good)
        say_partitions(result, clean["gpu_type"], enc["gpu_matched"].to_numpy(object) == "partition")
        result.index = rows.index
        return result

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
            est = estimate(T, pool, models, desc, distance_weight=self.anchor_distance_weight)
            done = np.isfinite(est["est"])
            tiers = tier_of(est["basis"], est["n_configs"])
            tiers[tiers == "measured"] = "transfer"
            filled_by = [
                T[c].to_numpy(bool) & done if c in T else done & False for c in ("batch_rule", "precision_rule")
            ]
            tiers = rule_tiers(tiers, *filled_by)
            for b in set(tiers[done]):
                rows = done & (tiers == b)
                cal = tier_quantiles(self.calibration_, b)
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
            if getattr(self, "method_", "heuristic") == "model":
                why = "the fitted model has no calibrated interval here"
            else:
                why = getattr(self, "fallback_reason_", None) or "no predictor has been fitted"
            h = heuristic_estimates(T.loc[todo].reset_index(drop=True), pool, why)
            idx = np.flatnonzero(todo)
            log_pred[idx], lower[idx], upper[idx] = h["est"], h["lower"], h["upper"]
            basis[idx], n_anchor[idx], warning[idx] = h["basis"], h["n_anchor"], h["warning"]
        return {
            "log_pred": log_pred,
            "log_lower": lower,
            "log_upper": upper,
            "method": method,
            "basis": basis,
            "n_anchor": n_anchor,
            "warning": warning,
        }

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
        frame = permutation_importances(self.importance_sample_, self.feature_names_, n_repeats, self.random_state)
        self._importances = (n_repeats, frame)
        return frame.copy()

    def calibrated_levels(self) -> list[float]:
        """Nominal levels :meth:`with_confidence` accepts without refitting."""
        self._require_fitted()
        tiers = list(self.calibration_.values())
        physics = getattr(self, "physics_", None)
        if physics is not None:
            tiers += list(physics.calibration_.values())
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
            raise FedoptInputError("confidence", f"{confidence!r} must be between 0 and 1")
        if self.method_ != "model":
            raise FedoptInputError(
                "confidence",
                f"no fitted model ({self.fallback_reason_}); heuristic intervals are "
                "fixed guesses, not calibrated at any level",
            )
        physics = getattr(self, "physics_", None)
        calibration = at_level(self.calibration_, level)
        physics_calibration = at_level(physics.calibration_, level) if physics is not None else {}
        if calibration is None or physics_calibration is None:
            raise FedoptInputError(
                "confidence",
                f"this model keeps calibration for {self.calibrated_levels()} only; "
                f"refit with confidence={level} for another level",
            )
        clone = copy.copy(self)
        clone.confidence = level
        clone.calibration_ = calibration
        if physics is not None:
            clone.physics_ = physics.with_calibration(physics_calibration)
        return clone

    def _require_fitted(self) -> None:
        if not hasattr(self, "n_runs_"):
            raise RuntimeError("PerformancePredictor is not fitted: call fit(runs) first")

    # ------------------------------------------------------------------ persistence

    def _version_tag(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps(self.get_params(), sort_keys=True).encode())
        table = getattr(self, "anchors_", None)
        if table is not None and len(table):
            h.update(pd.util.hash_pandas_object(table.astype(str), index=False).to_numpy().tobytes())
        return f"{persistence.ALGORITHM}-{h.hexdigest()[:12]}"

    def get_params(self) -> dict[str, Any]:
        """The configuration given to ``__init__`` (read from its signature, as scikit-learn does)."""
        names = [name for name in inspect.signature(type(self).__init__).parameters if name != "self"]
        return {name: getattr(self, name) for name in names}

    def to_bytes(self) -> bytes:
        """The fitted predictor as a zip of ``manifest.json`` + ``arrays.npz`` (no pickles)."""
        return persistence.to_bytes(self)

    @classmethod
    def from_bytes(cls, payload: bytes) -> PerformancePredictor:
        """Load what :meth:`to_bytes` wrote.  Anything else (a pickle, a damaged or altered file)
        raises :class:`ModelFormatError`; nothing in the payload is ever executed."""
        return persistence.from_bytes(cls, payload)

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
