"""The anchor table: measured runs collapsed per configuration, and what a task borrows from them.

An *anchor* is a measured (workload context, GPU, GPU count) with its median time per work unit;
predictions scale from anchors of the same workload on other GPUs (see :mod:`.estimator`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fedopt_core import schema
from fedopt_core.prediction import features

__all__ = [
    "ANCHOR_NUM",
    "ANCHOR_TEXT",
    "batch_rule_notes",
    "borrow_software",
    "collapse_runs",
    "encode_anchors",
    "fill_missing_batch",
    "fill_missing_precision",
    "one_anchor_per_context",
    "precision_rule_notes",
    "with_user_runs",
]

# The anchor table is stored in these run-schema columns (times per one work unit).
ANCHOR_TEXT = ["task_type", "workload", "precision", "software", "gpu_type"]
ANCHOR_NUM = ["gpu_count", "batch_size", "vcpus", "execution_time_s", "n_runs"]


def collapse_runs(encoded: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Repeated runs of one (workload context, GPU, count) -> one anchor (median time).

    Many near-identical cloud hosts would otherwise outvote everything else.
    """
    e = encoded.reset_index(drop=True)
    r = runs.reset_index(drop=True)
    has = e["ctx"].notna().to_numpy(bool) & np.isfinite(e["y"].to_numpy(float))
    e, r = e.loc[has], r.loc[has]
    if e.empty:
        return pd.DataFrame(columns=[*ANCHOR_TEXT, *ANCHOR_NUM])
    frame = pd.DataFrame(
        {
            "ctx": e["ctx"].to_numpy(object),
            "gpu_key": e["gpu_key"].to_numpy(object),
            "gpu_count": np.nan_to_num(e["gpu_count"].to_numpy(float), nan=0.0),
            "y": e["y"].to_numpy(float),
            "log_batch": e["log_batch_size"].to_numpy(float),
            "log_vcpus": e["log_vcpus"].to_numpy(float),
            "gpu_type": np.where(
                e["known_hw"].to_numpy(bool), e["gpu_name"].to_numpy(object), r["gpu_type"].to_numpy(object)
            ),
            **{c: r[c].to_numpy(object) for c in ("task_type", "workload", "precision", "software")},
        }
    )
    g = frame.groupby(["ctx", "gpu_key", "gpu_count"], sort=True, dropna=False)
    out = g.agg(
        y=("y", "median"),
        log_batch=("log_batch", "median"),
        log_vcpus=("log_vcpus", "median"),
        n_runs=("y", "size"),
        gpu_type=("gpu_type", "first"),
        task_type=("task_type", "first"),
        workload=("workload", "first"),
        precision=("precision", "first"),
        software=("software", "first"),
    ).reset_index()
    return pd.DataFrame(
        {
            **{c: out[c].astype(object).to_numpy() for c in ANCHOR_TEXT},
            "gpu_count": out["gpu_count"].to_numpy(float),
            "batch_size": np.exp(out["log_batch"].to_numpy(float)),
            "vcpus": np.exp(out["log_vcpus"].to_numpy(float)),
            "execution_time_s": np.exp(out["y"].to_numpy(float)),
            "n_runs": out["n_runs"].to_numpy(float),
        }
    )


def encode_anchors(table: pd.DataFrame) -> pd.DataFrame:
    """Encoded anchor rows (times per one work unit)."""
    runs = schema.normalise_frame(table.assign(work_units=1.0))
    enc = features.encode(runs)
    enc["n_runs"] = table["n_runs"].to_numpy(float)
    return enc


def borrow_software(enc: pd.DataFrame, rows: pd.DataFrame, pool: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
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
    wanted = (
        rows["software"].isna().to_numpy(bool)
        & ctx.notna().to_numpy(bool)
        & ~ctx.isin(set(measured["ctx"])).to_numpy(bool)
    )
    if not wanted.any():
        return enc, borrowed
    # A context key ends with its software; without one it is the shared prefix.
    runs = measured.groupby("ctx")["n_runs"].sum()
    prefix = runs.index.to_series().str.rsplit("\x1f", n=1).str[0] + "\x1f"
    table = pd.DataFrame({"ctx": runs.index, "prefix": prefix.to_numpy(object), "n": runs.to_numpy(float)})
    best = table.sort_values(["n", "ctx"], ascending=[False, False], kind="stable").drop_duplicates("prefix")
    choice = ctx[wanted].map(dict(zip(best["prefix"], best["ctx"], strict=True)))
    found = choice.notna()
    rows_found = choice.index[found.to_numpy(bool)]
    if len(rows_found):
        enc = enc.copy()
        enc.loc[rows_found, "ctx"] = choice[found].to_numpy(object)
        borrowed.loc[rows_found] = choice[found].str.rsplit("\x1f", n=1).str[1].to_numpy(object)
    return enc, borrowed


def one_anchor_per_context(targets: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Row positions of one random run per context, preferring single-GPU runs."""
    order = rng.permutation(len(targets))
    frame = pd.DataFrame(
        {
            "ctx": targets["ctx"].to_numpy(object)[order],
            "multi": (targets["gpu_count"].to_numpy(float)[order] != 1.0),
            "pos": order,
        }
    )
    frame = frame.sort_values(["ctx", "multi"], kind="stable")
    return frame.drop_duplicates("ctx")["pos"].to_numpy(np.int64)


def _workload_key(rows: pd.DataFrame) -> pd.Series:
    text = [rows[c].astype("string").str.strip().str.lower().fillna("") for c in ("task_type", "workload")]
    return (text[0] + "\x1f" + text[1]).reset_index(drop=True)


def fill_missing_batch(rows: pd.DataFrame, table: pd.DataFrame | None) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows without a batch size take the workload's most measured batch per GPU, times their
    GPU count (the stated rule; a trained model's intervals for such rows come from predictions
    made the same way).  Returns the rows and, per row, the batch per GPU assumed (NaN where the
    row gave one, or nothing of its workload states a batch)."""
    rows = rows.reset_index(drop=True)
    batch = pd.to_numeric(rows["batch_size"], errors="coerce").to_numpy(float)
    assumed = np.full(len(rows), np.nan)
    missing = ~np.isfinite(batch)
    if not missing.any() or table is None or len(table) == 0:
        return rows, assumed
    t_batch = pd.to_numeric(table["batch_size"], errors="coerce").to_numpy(float)
    t_count = pd.to_numeric(table["gpu_count"], errors="coerce").to_numpy(float)
    ok = np.isfinite(t_batch) & (t_count > 0)
    if not ok.any():
        return rows, assumed
    stated = pd.DataFrame(
        {
            "key": _workload_key(table.loc[ok]).to_numpy(object),
            "per_gpu": np.round(t_batch[ok] / t_count[ok], 6),
            "runs": pd.to_numeric(table.loc[ok, "n_runs"], errors="coerce").fillna(1.0).to_numpy(float),
        }
    )
    counts = stated.groupby(["key", "per_gpu"], as_index=False)["runs"].sum()
    # most runs first; a tie goes to the smaller batch (it fits wherever the larger does)
    counts = counts.sort_values(["key", "runs", "per_gpu"], ascending=[True, False, True])
    rule = counts.drop_duplicates("key").set_index("key")["per_gpu"]
    assumed = np.where(missing, _workload_key(rows).map(rule).to_numpy(float), np.nan)
    gpus = pd.to_numeric(rows["gpu_count"], errors="coerce").fillna(1.0).to_numpy(float)
    fill = np.isfinite(assumed)
    if fill.any():
        rows = rows.copy()
        rows["batch_size"] = np.where(fill, np.maximum(np.round(assumed * gpus), 1.0), batch)
    return rows, assumed


def fill_missing_precision(rows: pd.DataFrame, table: pd.DataFrame | None) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows that state neither a precision nor a software version take those of their workload's
    most measured context (same task type and workload), the stated rule.

    Without it a job described only as "resnet50" matches no measured context (they all carry a
    precision) and is predicted from hardware facts alone, for a precision no run had: faster
    than fp16 and fp32 alike on one GPU, slower than both on another.  Rows whose own context
    was measured (a workload logged without a precision) keep it.  Returns the rows and, per row,
    what was assumed ("fp16_amp, v1_ngc22-23"; None where nothing was).
    """
    rows = rows.reset_index(drop=True)
    assumed = np.full(len(rows), None, dtype=object)
    if table is None or len(table) == 0:
        return rows, assumed
    ctx = features.context_keys(rows)
    # rows without a workload have no context to take from
    missing = (rows["precision"].isna() & rows["software"].isna()).to_numpy(bool) & pd.notna(ctx)
    if not missing.any():
        return rows, assumed
    measured = pd.DataFrame(
        {
            "ctx": features.context_keys(table),
            "workload": _workload_key(table).to_numpy(object),
            "runs": (
                pd.to_numeric(table["n_runs"], errors="coerce").to_numpy(float)
                if "n_runs" in table
                else np.ones(len(table))
            ),
            "precision": table["precision"].to_numpy(object),
            "software": table["software"].to_numpy(object),
        }
    )
    measured = measured.loc[measured["ctx"].notna()].fillna({"runs": 1.0})
    missing = missing & ~np.isin(ctx, measured["ctx"].to_numpy(object))
    if not missing.any() or measured.empty:
        return rows, assumed
    per_context = measured.groupby(["workload", "ctx"], as_index=False).agg(
        runs=("runs", "sum"), precision=("precision", "first"), software=("software", "first")
    )
    # most runs first; a tie goes to the later key, as borrow_software does
    best = per_context.sort_values(["runs", "ctx"], ascending=[False, False], kind="stable").drop_duplicates("workload")
    best = best.loc[best["precision"].notna()].set_index("workload")
    wanted = _workload_key(rows)
    found = missing & wanted.isin(best.index).to_numpy(bool)
    if found.any():
        rows = rows.copy()
        choice = best.loc[wanted[found].to_numpy(object)]
        rows.loc[found, "precision"] = choice["precision"].to_numpy(object)
        rows.loc[found, "software"] = choice["software"].to_numpy(object)
        assumed[found] = [
            p if pd.isna(s) or str(s) == "" else f"{p}, {s}"
            for p, s in zip(choice["precision"], choice["software"], strict=True)
        ]
    return rows, assumed


def precision_rule_notes(assumed: np.ndarray) -> pd.Series:
    """What a prediction says where :func:`fill_missing_precision` chose its precision."""
    return pd.Series(assumed, dtype=object).map(
        lambda b: None if b is None else f"no precision given: compared with this workload's most measured runs ({b})"
    )


def batch_rule_notes(assumed: np.ndarray) -> pd.Series:
    """What a prediction says where :func:`fill_missing_batch` chose its batch."""
    return pd.Series(assumed).map(
        lambda b: f"no batch size given: assumed {b:g} per GPU, the most measured batch of this workload"
    )


def with_user_runs(table: pd.DataFrame | None, runs: pd.DataFrame | None) -> pd.DataFrame | None:
    """The anchor table with the user's runs before it (one run each), for the rules that read both."""
    if runs is None or len(runs) == 0:
        return table
    mine = runs[[*ANCHOR_TEXT, "gpu_count", "batch_size"]].assign(n_runs=1.0)
    return mine if table is None or len(table) == 0 else pd.concat([mine, table], ignore_index=True)
