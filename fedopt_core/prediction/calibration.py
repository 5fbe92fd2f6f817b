"""Calibration of the intervals: residual tiers, normalised conformal scores, kept levels.

Residuals come from folds grouped by GPU (and by workload, for one-anchor predictions); each
*tier* (basis, with ``/sparse`` when fewer than :data:`SPARSE_ANCHORS` anchors stand behind a
prediction) gets its own quantiles, kept for every level in :data:`CALIBRATED_LEVELS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from fedopt_core.prediction.stats import conformal_quantiles

__all__ = [
    "BATCH_RULE_TIER",
    "PRECISION_RULE_TIER",
    "CALIBRATED_LEVELS",
    "SPARSE_ANCHORS",
    "Residuals",
    "at_level",
    "calibrate",
    "difficulty",
    "has_tier",
    "rule_tiers",
    "tier_of",
    "tier_quantiles",
]

#: Nominal levels whose conformal quantiles every fit keeps (see with_confidence).
CALIBRATED_LEVELS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99)


#: Tier suffix of rows whose missing batch size the rule filled (anchors.fill_missing_batch).
BATCH_RULE_TIER = "/batch-rule"
#: Tier suffix of rows whose missing precision the rule filled (anchors.fill_missing_precision);
#: it takes the place of the batch suffix where both rules filled a row.
PRECISION_RULE_TIER = "/precision-rule"

#: A prediction resting on fewer distinct anchor configurations than this is "sparse" and has
#: its own, wider calibration (one anchor says nothing about how much anchors disagree).
SPARSE_ANCHORS = 3


def rule_tiers(tiers: np.ndarray, batch_rule: np.ndarray, precision_rule: np.ndarray) -> np.ndarray:
    """Rows a rule filled get its tier suffix: they are calibrated on held-out runs predicted the
    same way.  The precision rule's suffix replaces the batch rule's where both filled a row."""
    out = np.asarray(tiers, dtype=object).copy()
    out[batch_rule] = out[batch_rule] + BATCH_RULE_TIER
    out[precision_rule] = np.asarray(tiers, dtype=object)[precision_rule] + PRECISION_RULE_TIER
    return out


def tier_quantiles(calibration: Mapping[str, dict], tier: str) -> dict | None:
    """A tier's conformal quantiles: its own; for a rule tier without them, its base tier's; for a
    sparse tier without them, the dense tier's doubled (a documented guess); else None."""
    found = calibration.get(tier) or calibration.get(
        tier.removesuffix(BATCH_RULE_TIER).removesuffix(PRECISION_RULE_TIER)
    )
    if found is None and tier.endswith("/sparse"):
        dense = calibration.get(tier.split("/")[0])
        if dense is not None:
            found = {"lower": 2.0 * dense["lower"], "upper": 2.0 * dense["upper"]}
    return found


def tier_of(basis: np.ndarray, n_configs: np.ndarray) -> np.ndarray:
    transfer = np.isin(basis, ["transfer", "transfer+scaling"])
    sparse = transfer & (n_configs < SPARSE_ANCHORS)
    return np.where(sparse, basis.astype(str) + "/sparse", basis.astype(str)).astype(object)


def has_tier(calibration: Mapping[str, Any], basis: str) -> bool:
    return basis in calibration or f"{basis}/sparse" in calibration


class Residuals:
    """Out-of-fold residuals with what calibration needs (tier, spread, workload)."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def add(self, targets: pd.DataFrame, est: Mapping[str, np.ndarray], mode: str, suffix: str = "") -> None:
        ok = np.isfinite(est["est"]) & (est["basis"] != "")
        if mode != "auto":
            ok &= est["basis"] == mode
        # each anchor row stands for n_runs measured runs: the interval is for single runs
        rep = np.where(ok, targets["n_runs"].to_numpy(float), 0).astype(int)
        tier = tier_of(est["basis"], est["n_configs"])
        if suffix:
            tier = np.where(tier == "measured", "transfer", tier).astype(object) + suffix
        self.parts.append(
            pd.DataFrame(
                {
                    "r": np.repeat(targets["y"].to_numpy(float) - est["est"], rep),
                    "mad": np.repeat(np.nan_to_num(est["mad"]), rep),
                    "workload": np.repeat(targets["workload_key"].to_numpy(object), rep),
                    "tier": np.repeat(tier, rep),
                }
            )
        )

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame({"r": [], "mad": [], "workload": [], "tier": []})
        return pd.concat(self.parts, ignore_index=True)


def calibrate(res: pd.DataFrame, confidence: float) -> tuple[float, dict[str, float], dict[str, Any]]:
    """Conformal quantiles per tier (basis, and dense/sparse anchors) of normalised scores.

    ``res`` is :meth:`Residuals.frame`.  Returns the global error scale, the per-workload scales
    (shrunk towards the global one) and the calibration per tier, each with the quantiles at
    ``confidence`` and at every level of :data:`CALIBRATED_LEVELS`.
    """
    dense = res.loc[res["tier"] == "transfer"]
    base = dense if len(dense) else res
    glob = float(np.median(np.abs(base["r"]))) if len(base) else math.log(1.3)
    global_scale = max(glob, 1e-3)
    workload_scale: dict[str, float] = {}
    # Per-workload error scale, shrunk towards the global one (20 runs' worth of prior).
    prior = 20.0
    if len(dense):
        g = dense.assign(a=np.abs(dense["r"])).groupby("workload")["a"]
        scale = (g.median() * g.size() + global_scale * prior) / (g.size() + prior)
        workload_scale = {str(k): float(v) for k, v in scale.items()}
    calibration: dict[str, Any] = {}
    for tier, part in res.groupby("tier"):
        if len(part) < 20:
            continue
        s = difficulty(part["workload"].to_numpy(object), part["mad"].to_numpy(float), workload_scale, global_scale)
        r = part["r"].to_numpy(float)
        scores = r / s
        lo, hi = conformal_quantiles(scores, float(confidence))
        # The same scores at other nominal levels, so with_confidence() needs no refit and the
        # Model page can draw nominal against observed coverage.
        levels = sorted(set(CALIBRATED_LEVELS) | {float(confidence)})
        calibration[str(tier)] = {
            "lower": lo,
            "upper": hi,
            "n": int(len(r)),
            "median_abs_log_error": float(np.median(np.abs(r))),
            "levels": [[lv, *conformal_quantiles(scores, lv)] for lv in levels],
        }
    return global_scale, workload_scale, calibration


def difficulty(
    workload_keys: np.ndarray, mad: np.ndarray, workload_scale: Mapping[str, float], global_scale: float | None
) -> np.ndarray:
    """Per-row scale of the conformal scores: sqrt(s_workload**2 + anchor spread**2)."""
    keys = pd.Series(workload_keys, dtype=object)
    scale = keys.map(workload_scale).astype(float)
    # Models saved before the key carried the task type knew the workload name alone.
    scale = scale.fillna(keys.astype(str).str.rsplit("\x1f", n=1).str[-1].map(workload_scale).astype(float))
    s = scale.fillna(global_scale or math.log(1.3)).to_numpy(float)
    return np.sqrt(s**2 + np.nan_to_num(mad) ** 2)


def at_level(calibration: Mapping[str, Any], level: float) -> dict[str, Any] | None:
    """``calibration`` with every tier's interval at nominal ``level``; None if a tier lacks it."""
    out = {}
    for tier, cal in calibration.items():
        match = [lv for lv in cal.get("levels", []) if abs(lv[0] - level) < 1e-9]
        if not match:
            return None
        out[tier] = {**cal, "lower": match[0][1], "upper": match[0][2]}
    return out
