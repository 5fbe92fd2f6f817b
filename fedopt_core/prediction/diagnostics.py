"""What a fitted model says about itself: which features matter, and which measured runs look wrong.

Both are measured out of fold, on GPUs the fold's model never saw: the permutation importances on
pairs kept from the first GPU-grouped fold, and the suspect configurations from what the other
GPUs' runs predict for each configuration with its own GPU held out.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from fedopt_core.prediction import features
from fedopt_core.prediction.stats import join_keys
from fedopt_core.prediction.trees import ArrayTrees

__all__ = ["SUSPECT_FACTOR", "importance_sample", "permutation_importances", "find_suspects"]

#: A measured configuration this many times slower or faster than the other GPUs' runs predict is listed as suspect.
SUSPECT_FACTOR = 5.0


def importance_sample(
    targets: pd.DataFrame, pool: pd.DataFrame, model: Any, desc: pd.DataFrame, seed: int
) -> dict[str, Any] | None:
    """Pairs from GPUs the fold's model never saw, for permutation importance."""
    key_t = targets["ctx"].astype(object) + "\x1e" + targets["gpu_count"].astype(str)
    key_a = np.where(
        pool["known_hw"].to_numpy(bool), pool["ctx"].astype(object) + "\x1e" + pool["gpu_count"].astype(str), None
    )
    t, a = join_keys(key_t.to_numpy(object), key_a)
    if len(t) < 20:
        return None
    if len(t) > 1000:
        pick = np.random.default_rng(seed).choice(len(t), 1000, replace=False)
        t, a = t[pick], a[pick]
    X = features.transfer_features(targets.iloc[t], pool.iloc[a], desc)
    y = targets["y"].to_numpy(float)[t] - pool["y"].to_numpy(float)[a]
    return {"X": X, "y": y, "model": ArrayTrees.from_sklearn(model)}


def permutation_importances(sample: dict[str, Any] | None, names: list[str], n_repeats: int, seed: int) -> pd.DataFrame:
    """Permutation importance of each feature on ``sample`` (see :func:`importance_sample`).

    The increase in mean absolute error of the log time ratio when one feature's column is
    shuffled; columns feature, importance, std (over ``n_repeats``).  NaN without a sample.
    """
    if sample is None:
        frame = pd.DataFrame({"feature": names, "importance": np.nan, "std": np.nan})
    else:
        X, y, model = sample["X"], sample["y"], sample["model"]
        base = np.mean(np.abs(model.predict(X) - y))
        rng = np.random.default_rng(seed)
        imp = np.zeros((X.shape[1], n_repeats))
        for j in range(X.shape[1]):  # one column at a time: bounded by the feature count
            for r in range(n_repeats):
                Xp = X.copy()
                Xp[:, j] = X[rng.permutation(len(X)), j]
                imp[j, r] = np.mean(np.abs(model.predict(Xp) - y)) - base
        frame = pd.DataFrame({"feature": names, "importance": imp.mean(1), "std": imp.std(1)})
        frame = frame.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
    return frame


def find_suspects(pool: pd.DataFrame, anchors: pd.DataFrame, cross_checks: list[pd.DataFrame]) -> list[dict[str, Any]]:
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
    table = anchors.iloc[rows[bad]]
    expected = np.exp(best["est"].to_numpy(float)[bad])
    out = pd.DataFrame(
        {
            **{
                c: table[c].astype(object).where(table[c].notna(), None).to_numpy()
                for c in ("workload", "precision", "software", "gpu_type")
            },
            "gpu_count": table["gpu_count"].to_numpy(float),
            "n_runs": table["n_runs"].to_numpy(float),
            "measured_s_per_unit": table["execution_time_s"].to_numpy(float),
            "expected_s_per_unit": expected,
            "factor": np.exp(off[bad]),
        }
    )
    out = out.iloc[np.argsort(-np.abs(off[bad]), kind="stable")]
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in out.to_dict("records")]
