"""The physics prior with a learned efficiency: time = work / (peak x efficiency) + memory traffic.

For a job the task describes (a catalogued transformer or one given by its size, see
:mod:`.work`) on a GPU with known datasheet facts:

* ``t_phys = tokens x FLOPs/token / (GPUs x peak at the precision)`` plus, for generation, the
  bytes every decode step reads (weights once per batch, each sequence's KV cache) over the
  GPUs' memory bandwidth.  The peak is the precision's own: dense BF16/FP16 tensor, FP8 where the
  GPU has it (else its 16-bit rate), FP4 at twice FP8 on Blackwell, FP32 for fp32.
* ``log t = log t_phys + g(x)``: ``g`` is ``-log efficiency``, a gradient-boosted model of
  hardware facts (peak, bandwidth, memory, vendor, year), the model (active and total size, MoE
  share, sequence), the layout (GPU count, batch per GPU, memory pressure) and the mode and
  precision, learned from measured runs.  Physics carries a new GPU's speed-up, so a GPU faster
  than every measured one is predicted faster; ``g`` only corrects how well it is used.  Training's
  level of ``g`` is learned from training runs alone and never below 0 (at most the peak);
  differences of ``g`` between runs come from trees learned on every run (:class:`Efficiency`).
* **Anchors** (``basis="physics+anchors"``): measured runs of the same workload, mode and
  precision class (on other GPUs or counts, or the user's own run) give the workload's own offset
  from ``g``, the weighted median of their residuals, nearer hardware weighing more.  Where the
  work itself is not known (MLPerf's time to train: one "run"), anchors are the only basis and
  the work cancels in the ratio.
* Intervals are split-conformal per tier (``physics``, ``physics+anchors`` and its ``/sparse``
  form for fewer than three anchor configurations), from folds grouped by GPU model *and* by model
  family, so they hold for a GPU and for a model nobody measured.
* Before any run teaches an efficiency, :func:`prior_estimate` states one (``physics-prior``);
  :func:`overlay` puts these answers into a predictor's rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import GroupKFold

from fedopt_core import schema
from fedopt_core.prediction.calibration import CALIBRATED_LEVELS, SPARSE_ANCHORS
from fedopt_core.prediction.physics_table import MODE_GROUPS, PHYSICS_FEATURES, PHYSICS_NUM, PHYSICS_TEXT, physics_rows
from fedopt_core.prediction.stats import conformal_quantiles, weighted_quantile_by_group
from fedopt_core.prediction.trees import ArrayTrees, fit_gbm

__all__ = [
    "MODE_GROUPS",
    "PHYSICS_FEATURES",
    "PHYSICS_NUM",
    "PHYSICS_TEXT",
    "PRIOR_EFFICIENCY",
    "Efficiency",
    "PhysicsModel",
    "overlay",
    "physics_rows",
    "prior_estimate",
]

#: Anchors ``d`` apart (see :data:`ANCHOR_DISTANCE_TERMS`) weigh ``exp(-ANCHOR_DISTANCE_WEIGHT x d)``.
ANCHOR_DISTANCE_WEIGHT = 2.0
#: How far apart two runs' configurations are: weight per |log ratio| (a missing value counts
#: as ``CONFIG_MISSING`` apart).  Hardware first, then the layout and shape of the job.
ANCHOR_DISTANCE_TERMS = {
    "log_peak_tflops": 1.0,
    "log_bandwidth": 1.0,
    "log_gpu_count": 0.5,
    "log_batch_per_gpu": 0.5,
    "log_seq_len": 0.5,
    "log_concurrency": 0.5,
}
CONFIG_MISSING = 1.0
#: The efficiency assumed before any run of a mode group is measured (share of the peak), and
#: the log half-width of its stated, uncalibrated interval.  Training at 40% of the peak is the
#: usual rule of thumb (measured in llm_runs.csv: 20-70%); serving varies far more (10%-400% of
#: the simple roofline time, batching and prompt reuse being unknown), hence its wider range.
PRIOR_EFFICIENCY = {"training": 0.40, "inference": 0.50}
PRIOR_HALF_WIDTH = {"training": math.log(2.5), "inference": math.log(6.0)}
#: Fewer cross-validation residuals than this give no interval of their own.
MIN_CALIBRATION_RESIDUALS = 20
_TIERS = ("physics", "physics+anchors", "physics+anchors/sparse")


class PhysicsModel:
    """The physics prior and its learned efficiency (see the module doc); scikit-learn style.

    ``fit(runs)`` learns ``g`` and the interval calibration from measured runs (run schema);
    ``predict(rows, anchors)`` gives, per row, the log time and interval where physics applies.
    """

    def __init__(
        self,
        *,
        max_iter: int = 300,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 10,
        random_state: int = 0,
        confidence: float = 0.9,
    ) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state
        self.confidence = confidence

    # ------------------------------------------------------------------ fitting

    def _gbm(self) -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=1.0,
            random_state=self.random_state,
        )

    def _fit_efficiency(self, table: pd.DataFrame) -> Efficiency | None:
        """The level of ``g`` per mode group that has runs of its own, and shared trees for
        differences of ``g`` between an anchor and a target.  Training's level learns from
        training runs only (serving's apparent efficiencies, above 1 where the roofline time is
        pessimistic, must not leak into it); inference's level and the shared trees learn from
        every run, the modes being features."""
        known = table["work_known"].to_numpy(bool) & np.isfinite(table["y"].to_numpy(float))
        group = table["mode_group"].to_numpy(object)

        def trees(rows: np.ndarray) -> ArrayTrees:
            X = table.loc[rows, PHYSICS_FEATURES].to_numpy(float)
            target = table.loc[rows, "y"].to_numpy(float) - table.loc[rows, "log_t_phys"].to_numpy(float)
            return ArrayTrees.from_sklearn(fit_gbm(self._gbm(), X, target))

        shared = trees(known) if known.sum() >= 2 * self.min_samples_leaf else None
        models: dict[str, ArrayTrees] = {}
        for name in MODE_GROUPS:
            if shared is None or (known & (group == name)).sum() < 2 * self.min_samples_leaf:
                continue
            models[name] = trees(known & (group == name)) if name == "training" else shared
        return Efficiency(models, shared) if models else None

    def fit(self, runs: pd.DataFrame) -> PhysicsModel:
        """Learn from measured runs (normalised run-schema rows, successful, with a time)."""
        rows = runs.reset_index(drop=True)
        table = physics_rows(rows)
        keep = table["applies"].to_numpy(bool) & np.isfinite(table["y"].to_numpy(float))
        self.runs_ = rows.loc[keep, [*PHYSICS_TEXT, *PHYSICS_NUM]].reset_index(drop=True)
        self._pool_cache = None
        table = table.loc[keep].reset_index(drop=True)
        self.n_runs_ = int(len(table))
        self.calibration_: dict[str, Any] = {}
        self.efficiency_ = None
        if self.n_runs_ == 0:
            return self
        residuals: list[pd.DataFrame] = []
        # Folds grouped by GPU model: other GPUs' runs of the same workload anchor the held-out one.
        for by in ("gpu_key", "family"):
            groups = table[by].fillna("?").to_numpy(object)
            uniq = np.array(sorted(set(groups)), dtype=object)
            if len(uniq) < 2:
                continue
            folds = GroupKFold(n_splits=min(5, len(uniq))).split(uniq, groups=uniq)
            for train_g, test_g in folds:
                train = np.isin(groups, uniq[train_g])
                test = np.isin(groups, uniq[test_g])
                g = self._fit_efficiency(table.loc[train])
                if g is None:
                    continue
                part = table.loc[test].reset_index(drop=True)
                pool = table.loc[train].reset_index(drop=True)
                est = self._estimate(part, pool, g)
                residuals.append(
                    pd.DataFrame({"r": part["y"] - est["est"], "tier": est["tier"], "group": part["mode_group"]})
                )
                if by == "family":  # a new model measured once: one anchor run per workload
                    one = _one_per_ctx(part, np.random.default_rng(self.random_state))
                    rest = np.setdiff1d(np.arange(len(part)), one)
                    est = self._estimate(part.iloc[rest].reset_index(drop=True), part.iloc[one], g)
                    residuals.append(
                        pd.DataFrame(
                            {
                                "r": part["y"].to_numpy()[rest] - est["est"],
                                "tier": est["tier"],
                                "group": part["mode_group"].to_numpy(object)[rest],
                            }
                        )
                    )
        empty = pd.DataFrame({"r": [], "tier": [], "group": []})
        res = pd.concat(residuals, ignore_index=True) if residuals else empty
        res = res[np.isfinite(res["r"].to_numpy(float))]
        # Per tier, and per tier and mode group where there are enough residuals (serving is
        # harder to predict than training: one pooled interval would be wrong for both).
        parts = [(str(t), p) for t, p in res.groupby("tier")]
        parts += [(f"{t}@{g}", p) for (t, g), p in res.groupby(["tier", "group"])]
        for key, part in parts:
            if len(part) < MIN_CALIBRATION_RESIDUALS or key.split("@")[0] not in _TIERS:
                continue
            r = part["r"].to_numpy(float)
            levels = sorted(set(CALIBRATED_LEVELS) | {float(self.confidence)})
            lo, hi = conformal_quantiles(r, float(self.confidence))
            self.calibration_[key] = {
                "lower": lo,
                "upper": hi,
                "n": int(len(r)),
                "median_abs_log_error": float(np.median(np.abs(r))),
                "levels": [[lv, *conformal_quantiles(r, lv)] for lv in levels],
            }
        self.efficiency_ = self._fit_efficiency(table)
        return self

    # ------------------------------------------------------------------ estimation

    def _estimate(self, targets: pd.DataFrame, pool: pd.DataFrame, g: ArrayTrees) -> dict[str, np.ndarray]:
        """Log time per target row (physics table rows) from ``g`` and the pool's anchors."""
        n = len(targets)
        est = targets["log_t_phys"].to_numpy(float) + (g.predict(targets) if n else np.zeros(0))
        # Between anchor and target only differences of g count: the shared trees, learned
        # from every run, know the hardware effects best.
        g_t = g.predict(targets, relative=True) if n else np.zeros(0)
        tier = np.where(np.isfinite(est), "physics", "").astype(object)
        n_anchor = np.zeros(n)
        if n and len(pool):
            g_a = g.predict(pool, relative=True)
            lk = pd.DataFrame({"k": targets["ctx"].to_numpy(object), "i": np.arange(n)}).dropna(subset=["k"])
            rk = pd.DataFrame({"k": pool["ctx"].to_numpy(object), "j": np.arange(len(pool))}).dropna(subset=["k"])
            pairs = lk.merge(rk, on="k")
            i, j = pairs["i"].to_numpy(np.int64), pairs["j"].to_numpy(np.int64)
            ok = np.isfinite(pool["y"].to_numpy(float)[j])
            i, j = i[ok], j[ok]
            if len(i):
                both_known = targets["work_known"].to_numpy(bool)[i] & pool["work_known"].to_numpy(bool)[j]
                base_t = np.where(
                    both_known, targets["log_t_phys"].to_numpy(float)[i], targets["log_t_rel"].to_numpy(float)[i]
                )
                base_a = np.where(
                    both_known, pool["log_t_phys"].to_numpy(float)[j], pool["log_t_rel"].to_numpy(float)[j]
                )
                residual = pool["y"].to_numpy(float)[j] - base_a - g_a[j]
                value = base_t + g_t[i] + residual
                dist = _anchor_distance(targets, pool, i, j)
                weight = np.exp(-ANCHOR_DISTANCE_WEIGHT * np.nan_to_num(dist, nan=3.0))
                good = np.isfinite(value)
                med = weighted_quantile_by_group(i[good], value[good], weight[good], n, 0.5)
                configs = (
                    pd.DataFrame(
                        {
                            "i": i[good],
                            "g": pool["gpu_key"].to_numpy(object)[j[good]],
                            "c": pool["log_gpu_count"].to_numpy(float)[j[good]],
                        }
                    )  # fmt: skip
                    .drop_duplicates()
                    .groupby("i")
                    .size()
                )
                n_configs = np.zeros(n)
                n_configs[configs.index.to_numpy(np.int64)] = configs.to_numpy(float)
                anchored = np.isfinite(med)
                est = np.where(anchored, med, est)
                n_anchor = np.bincount(i[good], minlength=n).astype(float)
                tier = np.where(
                    anchored,
                    np.where(n_configs < SPARSE_ANCHORS, "physics+anchors/sparse", "physics+anchors"),
                    tier,
                ).astype(object)
        return {"est": est, "tier": tier, "n_anchor": n_anchor}

    def predict(self, rows: pd.DataFrame, anchors: pd.DataFrame | None = None) -> pd.DataFrame:
        """Per row (normalised run-schema rows): ``log_pred``, ``log_lower``, ``log_upper``, ``basis``,
        ``n_anchor``, ``tier``; NaN where physics does not apply or its tier is not calibrated."""
        n = len(rows)
        out = pd.DataFrame(
            {
                "log_pred": np.full(n, np.nan),
                "log_lower": np.full(n, np.nan),
                "log_upper": np.full(n, np.nan),
                "basis": pd.Series([None] * n, dtype=object),
                "tier": pd.Series([None] * n, dtype=object),
                "n_anchor": np.zeros(n),
            }
        )
        if getattr(self, "efficiency_", None) is None or n == 0:
            return out
        table = physics_rows(rows)
        pool = self._pool_table()
        if anchors is not None and len(anchors):
            extra = physics_rows(schema.normalise_frame(anchors[[*PHYSICS_TEXT, *PHYSICS_NUM]]))
            extra = extra.loc[extra["applies"].to_numpy(bool) & np.isfinite(extra["y"].to_numpy(float))]
            pool = pd.concat([extra, pool], ignore_index=True)
        use = table["applies"].to_numpy(bool)
        part = table.loc[use].reset_index(drop=True)
        est = self._estimate(part, pool, self.efficiency_)
        idx = np.flatnonzero(use)
        groups = part["mode_group"].to_numpy(object)
        for tier, group in set(zip(est["tier"], groups, strict=True)):
            if not tier:
                continue
            cal = next(
                (
                    self.calibration_[k]
                    for k in (f"{tier}@{group}", tier, f"{tier.split('/')[0]}@{group}", tier.split("/")[0])
                    if k in self.calibration_
                ),
                None,
            )
            if cal is None:
                continue
            sel = (est["tier"] == tier) & (groups == group)
            rows_at = idx[sel]
            out.loc[rows_at, "log_pred"] = est["est"][sel]
            out.loc[rows_at, "log_lower"] = est["est"][sel] + min(cal["lower"], 0.0)
            out.loc[rows_at, "log_upper"] = est["est"][sel] + max(cal["upper"], 0.0)
            out.loc[rows_at, "basis"] = tier.split("/")[0]
            out.loc[rows_at, "tier"] = tier
            out.loc[rows_at, "n_anchor"] = est["n_anchor"][sel]
        _sane_scaling(out, rows)
        return out

    def _pool_table(self) -> pd.DataFrame:
        """The physics table of the fitted runs, built once (it is the slow part of a prediction)."""
        cached = getattr(self, "_pool_cache", None)
        if cached is None:
            cached = physics_rows(schema.normalise_frame(self.runs_)) if len(self.runs_) else physics_rows(self.runs_)
            cached = cached.loc[cached["applies"].to_numpy(bool)].reset_index(drop=True)
            self._pool_cache = cached
        return cached

    def with_calibration(self, calibration: Mapping[str, Any]) -> PhysicsModel:
        """A copy whose intervals use ``calibration`` (another nominal level), no refit."""
        clone = PhysicsModel(**self.get_params())
        clone.__dict__.update(self.__dict__)
        clone.calibration_ = dict(calibration)
        return clone

    def get_params(self) -> dict[str, Any]:
        return {
            "max_iter": self.max_iter,
            "learning_rate": self.learning_rate,
            "max_leaf_nodes": self.max_leaf_nodes,
            "min_samples_leaf": self.min_samples_leaf,
            "random_state": self.random_state,
            "confidence": self.confidence,
        }


class Efficiency:
    """``g = log t - log t_phys``: its level per mode group that had runs of its own, and shared
    trees for its differences between runs (see :meth:`PhysicsModel._fit_efficiency`).

    A mode group with no runs (serving when only training was measured) gets NaN: its
    efficiency is not invented from the other's.  Training cannot run faster than the GPUs'
    peak: its level is never below 0, whatever a tree extrapolates for hardware it never saw.
    """

    def __init__(self, models: Mapping[str, ArrayTrees], shared: ArrayTrees) -> None:
        self.models = dict(models)
        self.shared = shared

    @property
    def groups(self) -> list[str]:
        return list(self.models)

    def predict(self, table: pd.DataFrame, *, relative: bool = False) -> np.ndarray:
        out = np.full(len(table), np.nan)
        groups = table["mode_group"].to_numpy(object)
        for group, trees in self.models.items():
            rows = groups == group
            if rows.any():
                use = self.shared if relative else trees
                out[rows] = use.predict(table.loc[rows, PHYSICS_FEATURES].to_numpy(float))
        if not relative:
            training = groups == "training"
            out[training] = np.maximum(out[training], 0.0)
        return out


def _anchor_distance(targets: pd.DataFrame, pool: pd.DataFrame, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Distance between target rows ``i`` and pool rows ``j`` (see :data:`ANCHOR_DISTANCE_TERMS`)."""
    dist = np.zeros(len(i))
    for name, weight in ANCHOR_DISTANCE_TERMS.items():
        if not weight:
            continue
        gap = np.abs(targets[name].to_numpy(float)[i] - pool[name].to_numpy(float)[j])
        dist += weight * np.where(np.isfinite(gap), gap, CONFIG_MISSING)
    return dist


def prior_estimate(rows: pd.DataFrame) -> pd.DataFrame:
    """Before any run teaches an efficiency: the physics time at an assumed share of the peak.

    :data:`PRIOR_EFFICIENCY` per mode group, with :data:`PRIOR_HALF_WIDTH` each way: a stated
    guess (measured runs span about that much around it), never called calibrated.  Columns as
    :meth:`PhysicsModel.predict` plus ``mode_group``; NaN where the job is not described or its
    work is unknown.
    """
    table = physics_rows(rows)
    n = len(table)
    groups = table["mode_group"].to_numpy(object) if n else np.zeros(0, dtype=object)
    eff = np.array([PRIOR_EFFICIENCY.get(g, np.nan) for g in groups], dtype=float)
    half = np.array([PRIOR_HALF_WIDTH.get(g, np.nan) for g in groups], dtype=float)
    log_pred = np.where(table["work_known"].to_numpy(bool), table["log_t_phys"].to_numpy(float) - np.log(eff), np.nan)
    out = pd.DataFrame(
        {
            "log_pred": log_pred,
            "log_lower": log_pred - half,
            "log_upper": log_pred + half,
            "basis": pd.Series(np.where(np.isfinite(log_pred), "physics-prior", None), dtype=object),
            "tier": pd.Series(np.where(np.isfinite(log_pred), "physics-prior", None), dtype=object),
            "n_anchor": np.zeros(n),
            "mode_group": pd.Series(groups, dtype=object),
        }
    )
    _sane_scaling(out, rows)
    return out


def overlay(
    result: pd.DataFrame, clean: pd.DataFrame, physics: PhysicsModel | None, anchors: pd.DataFrame | None
) -> None:
    """Put the physics answer into a predictor's ``result`` rows where the job is described.

    A learned estimate (``physics``, ``physics+anchors``) wherever it answers, unless this very
    configuration was measured (``basis="measured"`` stays); where nothing better than a prior
    exists, the physics time at an assumed efficiency (``physics-prior``, labelled, method
    "heuristic").  ``clean``: the normalised rows; ``anchors``: the user's normalised runs.
    """
    if not (clean["mode"].notna() | clean["model_params_b"].notna()).any():
        return  # nothing described: the benchmark-style path alone (and no cost for it)
    guess = prior_estimate(clean)
    est = physics.predict(clean, anchors) if physics is not None else guess.assign(log_pred=np.nan)
    # No efficiency learned for this kind of job yet, and nothing better than a prior:
    # physics at an assumed efficiency beats a per-unit guess from unrelated workloads.
    prior = est["log_pred"].isna().to_numpy(bool) & result["basis"].isin(["workload-prior", "cold-prior"]).to_numpy(
        bool
    )
    if prior.any():
        prior &= guess["log_pred"].notna().to_numpy(bool)
        for col in ("log_pred", "log_lower", "log_upper", "basis", "n_anchor"):
            est.loc[prior, col] = guess.loc[prior, col]
    use = est["log_pred"].notna().to_numpy(bool) & (result["basis"].to_numpy(object) != "measured")
    if not use.any():
        return
    result.loc[use, "predicted_time_s"] = np.exp(est.loc[use, "log_pred"].to_numpy(float))
    result.loc[use, "lower_s"] = np.exp(est.loc[use, "log_lower"].to_numpy(float))
    result.loc[use, "upper_s"] = np.exp(est.loc[use, "log_upper"].to_numpy(float))
    basis = est["basis"].to_numpy(object)
    guessed = use & (basis == "physics-prior")
    result.loc[use, "method"] = np.where(guessed[use], "heuristic", "model")
    result.loc[use, "basis"] = basis[use]
    result.loc[use, "n_anchor_runs"] = est.loc[use, "n_anchor"].to_numpy(float)
    result.loc[use, "warning"] = None
    result.loc[use & (basis == "physics"), "warning"] = (
        "no measured run of this workload in this mode: a physics estimate (its work over the GPUs' peak, "
        "with an efficiency learned from other models' runs); log one run to anchor it"
    )
    groups = guess["mode_group"].astype(str)
    assumed = groups.map(lambda g: f"{PRIOR_EFFICIENCY.get(g, float('nan')):.0%}")
    result.loc[guessed, "warning"] = (
        "no measured " + groups[guessed] + " run of a described model to learn an efficiency from: its work "
        "over the GPUs' peak at an assumed " + assumed[guessed] + " of it, a guess with a stated range, not "
        "calibrated; import llm_runs.csv or log a run"
    )


def _sane_scaling(out: pd.DataFrame, rows: pd.DataFrame) -> None:
    """Within one request, n times the GPUs of a model for one job is never slower, nor more than
    n times faster: ascending counts, each estimate is clipped to ``[t_prev x n_prev / n, t_prev]``
    (intervals move with it).  Learned efficiencies are smooth but not monotone by construction."""
    answered = out["log_pred"].notna().to_numpy(bool)
    if answered.sum() < 2:
        return
    # the batch is left out: a stated rule scales it with the count, and it is the same job
    job_cols = [c for c in [*PHYSICS_TEXT, *PHYSICS_NUM] if c not in ("gpu_count", "batch_size", "execution_time_s")]
    key = pd.Series("", index=range(len(rows)))
    frame = rows.reset_index(drop=True)
    for col in job_cols:
        key = key + "\x1f" + frame[col].astype("string").fillna("")
    count = pd.to_numeric(frame["gpu_count"], errors="coerce").to_numpy(float)
    order = pd.DataFrame({"key": key.to_numpy(object), "n": count, "pos": np.arange(len(frame))})[answered]
    for _, group in order.groupby("key", sort=False):
        if group["n"].nunique() < 2:
            continue
        prev_t = prev_n = None
        for n_gpu, at in group.sort_values("n").groupby("n", sort=True):
            pos = at["pos"].to_numpy(np.int64)
            t = out.loc[pos, "log_pred"].to_numpy(float)
            if prev_t is not None:
                clipped = np.clip(t, prev_t + math.log(prev_n / n_gpu), prev_t)
                shift = clipped - t
                for col in ("log_pred", "log_lower", "log_upper"):
                    out.loc[pos, col] = out.loc[pos, col].to_numpy(float) + shift
                t = clipped
            prev_t, prev_n = float(np.min(t)), float(n_gpu)


def _one_per_ctx(table: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Positions of one random row per anchoring context (rows without one are never chosen)."""
    order = rng.permutation(len(table))
    frame = pd.DataFrame({"ctx": table["ctx"].to_numpy(object)[order], "pos": order}).dropna(subset=["ctx"])
    return frame.drop_duplicates("ctx")["pos"].to_numpy(np.int64)
