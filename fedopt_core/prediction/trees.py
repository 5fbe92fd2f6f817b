"""Fitted gradient-boosted trees as plain arrays: predictable without scikit-learn objects.

A saved model holds only these arrays (no pickle), and predicting from them evaluates every row
and tree at once.  Out-of-range indices in a loaded file raise :class:`~fedopt_core.errors.ModelFormatError`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from fedopt_core.errors import ModelFormatError

__all__ = ["ArrayTrees", "fit_gbm"]


class ArrayTrees:
    """A fitted HistGradientBoostingRegressor as plain arrays (numeric features only).

    Predicting from arrays keeps saved models free of pickles and evaluates all rows and trees
    at once.  Leaves point to themselves so every row walks exactly ``depth`` steps.
    """

    def __init__(
        self,
        baseline: float,
        roots: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        missing_left: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        value: np.ndarray,
        depth: int,
        n_features: int,
    ) -> None:
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
    def from_sklearn(cls, model: HistGradientBoostingRegressor) -> ArrayTrees:
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

        def cat(parts: list[np.ndarray], dt: type) -> np.ndarray:
            return np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)

        return cls(
            float(np.ravel(model._baseline_prediction)[0]),
            np.asarray(roots, np.int64),
            cat(feats, np.int64),
            cat(thr, np.float64),
            cat(miss, bool),
            cat(left, np.int64),
            cat(right, np.int64),
            cat(val, np.float64),
            depth,
            model.n_features_in_,
        )

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
            block = X[start : start + chunk]
            rows = np.arange(len(block))[:, None]
            node = np.broadcast_to(self.roots, (len(block), n_trees)).copy()
            for _ in range(self.depth):
                x = block[rows, self.feature[node]]
                go_left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
                node = np.where(go_left, self.left[node], self.right[node])
            out[start : start + chunk] += self.value[node].sum(axis=1)
        return out

    def to_arrays(self, prefix: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {
            f"{prefix}.{k}": getattr(self, k)
            for k in ("roots", "feature", "threshold", "missing_left", "left", "right", "value")
        }
        return arrays, {"baseline": self.baseline, "depth": self.depth, "n_features": self.n_features}

    @classmethod
    def from_arrays(cls, prefix: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> ArrayTrees:
        try:
            parts = {
                k: arrays[f"{prefix}.{k}"]
                for k in ("roots", "feature", "threshold", "missing_left", "left", "right", "value")
            }
            return cls(float(meta["baseline"]), depth=int(meta["depth"]), n_features=int(meta["n_features"]), **parts)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ModelFormatError):
                raise
            raise ModelFormatError(f"model file: tree {prefix!r} is incomplete ({exc})") from None


def fit_gbm(model: HistGradientBoostingRegressor, X: np.ndarray, y: np.ndarray) -> HistGradientBoostingRegressor:
    """``model.fit(X, y)`` where a column with no value at all (no run states a batch size, say)
    is fitted as a constant: scikit-learn's binning fails on an all-NaN column, and a column that
    never varies is never split on, so the trees are the same as without it."""
    X = np.array(X, dtype=float, copy=True)
    if X.size:
        empty = ~np.isfinite(X).any(axis=0)
        X[:, empty] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)
