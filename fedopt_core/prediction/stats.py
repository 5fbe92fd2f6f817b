"""Vectorised group statistics the predictor needs: weighted medians and quantiles per group,
split-conformal quantiles, and an all-pairs join on keys."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["conformal_quantiles", "dedupe_rows", "join_keys", "weighted_median_and_mad", "weighted_quantile_by_group"]


def weighted_median_and_mad(
    group: np.ndarray, value: np.ndarray, weight: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group: weighted median of ``value``, weighted median absolute deviation, count."""
    med = np.full(n_groups, np.nan)
    mad = np.full(n_groups, np.nan)
    count = np.bincount(group, minlength=n_groups)
    if len(group) == 0:
        return med, mad, count
    med = weighted_quantile_by_group(group, value, weight, n_groups, 0.5)
    mad = weighted_quantile_by_group(group, np.abs(value - med[group]), weight, n_groups, 0.5)
    return med, mad, count


def weighted_quantile_by_group(
    group: np.ndarray, value: np.ndarray, weight: np.ndarray, n_groups: int, q: float
) -> np.ndarray:
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


def conformal_quantiles(scores: np.ndarray, confidence: float) -> tuple[float, float]:
    """Lower and upper split-conformal quantiles of signed scores (finite-sample corrected)."""
    s = np.sort(scores[np.isfinite(scores)])
    n = len(s)
    if n == 0:
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    hi_rank = min(n, math.ceil((n + 1) * (1.0 - alpha)))
    lo_rank = max(1, math.floor((n + 1) * alpha))
    return float(s[lo_rank - 1]), float(s[hi_rank - 1])


def join_keys(left_key: np.ndarray, right_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j) with left_key[i] == right_key[j] (keys not None), as index arrays."""
    lk = pd.DataFrame({"k": left_key, "i": np.arange(len(left_key))}).dropna(subset=["k"])
    rk = pd.DataFrame({"k": right_key, "j": np.arange(len(right_key))}).dropna(subset=["k"])
    m = lk.merge(rk, on="k", how="inner")
    return m["i"].to_numpy(np.int64), m["j"].to_numpy(np.int64)


def dedupe_rows(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Codes of identical rows (NaN equals NaN) and the first row of each, vectorised."""
    key = np.zeros(len(frame), dtype=np.int64)
    for column in frame.columns:  # mixed-radix key, re-factorised so it never overflows
        codes, uniques = pd.factorize(frame[column], use_na_sentinel=False)
        key = pd.factorize(key * (len(uniques) + 1) + codes)[0].astype(np.int64)
    codes, uniques = pd.factorize(key)
    first = np.full(len(uniques), len(codes), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    return codes, first
