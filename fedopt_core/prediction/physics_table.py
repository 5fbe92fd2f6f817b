"""The physics of each row: what the job is, how much work, the GPUs' peak, the features of ``g``.

:func:`physics_rows` turns normalised run or task rows into the table the physics model works
on (see :mod:`.physics`): whether physics applies (a described transformer job on a GPU with
known facts), the physics time ``log_t_phys`` (compute at the precision's own peak, plus decode
memory traffic), the anchoring context and the efficiency model's inputs.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fedopt_core import schema
from fedopt_core.catalog import gpus
from fedopt_core.catalog.models import family_of
from fedopt_core.prediction import features, work

__all__ = ["MODE_GROUPS", "PHYSICS_FEATURES", "PHYSICS_NUM", "PHYSICS_TEXT", "physics_rows"]

#: Run fields a physics anchor keeps (the job, the platform, the outcome).
PHYSICS_TEXT = ["task_type", "workload", "mode", "precision", "software", "gpu_type", "work_unit"]
PHYSICS_NUM = [
    "model_params_b",
    "active_params_b",
    "seq_len",
    "prompt_tokens",
    "output_tokens",
    "concurrency",
    "gpu_count",
    "batch_size",
    "work_units",
    "execution_time_s",
]
#: The efficiency model's inputs.
PHYSICS_FEATURES = [
    "log_peak_tflops",
    "log_bandwidth",
    "log_ridge",
    "log_memory_gb",
    "is_amd",
    "is_sxm",
    "release_year",
    "log_tdp",
    "log_active_params",
    "log_total_params",
    "active_share",
    "log_seq_len",
    "log_gpu_count",
    "log_batch_per_gpu",
    "memory_share",
    "log_memory_pressure",
    "log_concurrency",
    "mode_training",
    "mode_lora",
    "mode_forward",
    "mode_offline",
    "mode_online",
    "precision_half",
    "precision_fp8",
    "precision_fp4",
    "precision_fp32",
]
#: Prompt tokens per request when neither the prompt nor the context is given (chat-like traffic).
DEFAULT_PROMPT_TOKENS = 1024
#: Modes whose efficiencies are learned apart: compute-bound training, and inference.
MODE_GROUPS = ("training", "inference")


def _precision_group(precision: pd.Series) -> np.ndarray:
    """half | fp8 | fp4 | fp32 per label; an unstated precision of an LLM job is taken as half."""
    text = precision.astype("string").str.lower().fillna("")
    cls = features.precision_class(precision)
    out = np.where(cls == "fp8", "fp8", np.where(cls == "fp32", "fp32", "half")).astype(object)
    out[text.str.contains("fp4", regex=False).to_numpy(bool)] = "fp4"
    out[(cls == "int8")] = "fp8"
    return out


def _peaks(gpu_type: pd.Series, group: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Hardware facts per row and the compute peak (TFLOPS) its precision runs at."""
    hw = features.hardware_facts(gpu_type)
    specs = gpus.gpu_specs([str(x) if isinstance(x, str) else "" for x in gpu_type])
    tensor = np.exp(hw["log_tensor_tflops"].to_numpy(float))
    fp32 = np.exp(hw["log_fp32_tflops"].to_numpy(float))
    fp8 = specs["tensor_fp8_tflops"].to_numpy(float)
    fp8 = np.where(np.isfinite(fp8), fp8, tensor)  # no FP8 units: it runs at the 16-bit rate
    blackwell = hw["compute_capability"].to_numpy(float) >= 10.0
    fp4 = np.where(blackwell, 2.0 * fp8, fp8)
    peak = np.select([group == "fp8", group == "fp4", group == "fp32"], [fp8, fp4, fp32], default=tensor)
    return hw, peak


def _job_table(rows: pd.DataFrame) -> tuple[np.ndarray, list[work.Job | None]]:
    """The job each row describes, resolved once per distinct description."""
    cols = ["workload", "model_params_b", "active_params_b", "mode", "task_type", "seq_len", "precision",
            "prompt_tokens", "output_tokens", "concurrency"]  # fmt: skip
    key = pd.Series("", index=rows.index)
    for col in cols:
        key = key + "\x1f" + rows[col].astype("string").fillna("")
    codes, uniques = pd.factorize(key)
    first = pd.Series(np.arange(len(rows))).groupby(codes).first().to_numpy()
    jobs = [work.describe_job(record) for record in rows.iloc[first].to_dict("records")]
    return codes, jobs


def _precision_that_fit(rows: pd.DataFrame) -> pd.DataFrame:
    """Measured generation runs of unstated precision whose 16-bit weights exceed the GPUs' memory
    get ``fp8``: the run happened, so its weights fit, and 8 bits is what serving engines quantize
    to (MLPerf's "quantization" submissions leave the precision blank).  Read at 16 bits, a 70B
    model on one 141 GB H200 would leave no room for a KV cache and decode one sequence at a time,
    predicting it 40x slower than measured.  Tasks (no measured time) keep what they say.
    """
    measured = np.isfinite(pd.to_numeric(rows.get("execution_time_s"), errors="coerce").to_numpy(float))
    blank = rows["precision"].isna().to_numpy(bool) & measured
    if not blank.any():
        return rows
    idx = np.flatnonzero(blank)
    part = rows.iloc[idx]
    codes, jobs = _job_table(part)
    weights = np.array(
        [
            np.nan if job is None or job.mode not in work.GENERATION_MODES else job.model.total_params_b * 2e9
            for job in jobs
        ]
    )[codes]
    mem_gb = np.exp(features.hardware_facts(part["gpu_type"])["log_memory_gb"].to_numpy(float))
    count = np.maximum(pd.to_numeric(part["gpu_count"], errors="coerce").to_numpy(float), 1.0)
    too_big = weights >= work.USABLE_FRACTION * mem_gb * 1e9 * count
    if not too_big.any():
        return rows
    rows = rows.copy()
    rows.loc[rows.index[idx[too_big]], "precision"] = "fp8"
    return rows


def physics_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Per normalised run/task row: whether physics applies, its log times and its features.

    Columns: ``applies`` (a described transformer on a known GPU), ``work_known`` (the work is in
    tokens, samples or steps, so ``log_t_phys`` is set), ``log_t_phys``, ``log_t_rel`` (log of
    work units over GPUs x peak: the time up to the workload's constant, for work of unknown
    size), ``ctx`` (workload, mode, precision class: runs that can anchor each other), ``family``,
    ``gpu_key`` and :data:`PHYSICS_FEATURES`.
    """
    rows = _precision_that_fit(rows.reset_index(drop=True))
    n = len(rows)
    out = pd.DataFrame(index=range(n))
    group = _precision_group(rows["precision"])
    hw, peak_tflops = _peaks(rows["gpu_type"], group)
    codes, jobs = _job_table(rows) if n else (np.zeros(0, int), [])
    count = pd.to_numeric(rows["gpu_count"], errors="coerce").to_numpy(float)
    units = pd.to_numeric(rows["work_units"], errors="coerce").fillna(1.0).to_numpy(float)
    batch = pd.to_numeric(rows["batch_size"], errors="coerce").to_numpy(float)
    conc = pd.to_numeric(rows["concurrency"], errors="coerce").to_numpy(float)
    unit = rows["work_unit"].astype(object).to_numpy()
    seq_given = pd.to_numeric(rows["seq_len"], errors="coerce").to_numpy(float)
    mem_gb = np.exp(hw["log_memory_gb"].to_numpy(float))
    bw = np.exp(hw["log_memory_bandwidth"].to_numpy(float)) * 1e9
    peak = peak_tflops * 1e12

    cols: dict[str, np.ndarray] = {c: np.full(n, np.nan) for c in PHYSICS_FEATURES}
    log_t_phys = np.full(n, np.nan)
    applies = np.zeros(n, bool)
    mode_of = np.full(n, None, dtype=object)
    family = np.full(n, None, dtype=object)
    for code, job in enumerate(jobs):
        if job is None or not job.model.is_transformer:
            continue
        idx = np.flatnonzero(codes == code)
        m = job.model
        mode = job.mode if job.mode in schema.MODES else "pretrain"
        generation = mode in work.GENERATION_MODES
        mode_of[idx] = mode
        family[idx] = family_of(job.model, rows["workload"].iloc[idx[0]])
        seq = float(job.seq_len)
        output = float(job.output_tokens or work.DEFAULT_OUTPUT_TOKENS)
        explicit_seq = seq_given[idx]
        prompt = np.where(
            job.prompt_tokens is not None,
            float(job.prompt_tokens or 0.0),
            np.where(np.isfinite(explicit_seq), np.maximum(explicit_seq - output, 0.0), DEFAULT_PROMPT_TOKENS),
        )
        flops = np.array(
            [work.flops_per_token(m, mode, int(seq), prompt_tokens=float(p), output_tokens=output) for p in prompt]
        )
        # tokens of work in each row
        u = unit[idx]
        per_unit = np.full(len(idx), np.nan)
        per_unit[u == "tokens"] = 1.0
        per_sample = output if generation else seq
        per_unit[u == "samples"] = per_sample
        per_unit[u == "steps"] = batch[idx][u == "steps"] * seq
        tokens = units[idx] * per_unit
        n_gpu = np.maximum(count[idx], 1.0)
        t_compute = tokens * flops / (n_gpu * peak[idx])
        # Generation reads the weights once per decode step for the batch, and each sequence's KV.
        t_memory = np.zeros(len(idx))
        users = np.full(len(idx), np.nan)
        if generation:
            weights = m.total_params_b * 1e9 * work.weight_bytes_per_param(job.precision)
            kv_seq = m.kv_bytes_per_token(2.0 if work.weight_bytes_per_param(job.precision) > 1 else 1.0) * (
                prompt + output
            )
            room = work.USABLE_FRACTION * mem_gb[idx] * 1e9 * n_gpu - weights
            fit_users = np.maximum(np.floor(room / np.maximum(kv_seq, 1.0)), 1.0)
            wanted = np.where(np.isfinite(conc[idx]), conc[idx], batch[idx])
            wanted = np.where(np.isfinite(wanted), wanted, work.DEFAULT_CONCURRENCY.get(mode, 1))
            users = np.minimum(wanted, fit_users)
            per_token = np.array(
                [
                    work.decode_bytes_per_token(m, job.precision, context=float(p) + output / 2, concurrency=float(b))
                    for p, b in zip(prompt, users, strict=True)
                ]
            )
            t_memory = tokens * per_token / (n_gpu * bw[idx])
        log_t_phys[idx] = np.log(t_compute + t_memory)
        memory = work.fit(m, mode, job.precision, 1, 1.0, **job.shape()).memory.total_bytes
        pressure = memory / np.maximum(work.USABLE_FRACTION * mem_gb[idx] * 1e9 * n_gpu, 1.0)
        cols["log_active_params"][idx] = math.log(m.active_params_b)
        cols["log_total_params"][idx] = math.log(m.total_params_b)
        cols["active_share"][idx] = m.active_params_b / m.total_params_b
        cols["log_seq_len"][idx] = math.log(seq)
        cols["memory_share"][idx] = t_memory / (t_compute + t_memory)
        cols["log_memory_pressure"][idx] = np.log(pressure)
        cols["log_concurrency"][idx] = np.log(users)
        cols["mode_training"][idx] = float(mode in ("pretrain", "full-ft", "train-step"))
        cols["mode_lora"][idx] = float(mode in ("lora", "qlora"))
        cols["mode_forward"][idx] = float(mode == "forward")
        cols["mode_offline"][idx] = float(mode == "offline")
        cols["mode_online"][idx] = float(mode in ("server", "serving", "interactive"))
        applies[idx] = True
    known = hw["known_hw"].to_numpy(bool) & np.isfinite(peak) & (peak > 0)
    # Only a job described as one (a mode or a model size stated): a benchmark row that merely
    # shares a model's name ("bert_large_squad" in Lambda's table) keeps its measured-run path.
    described = rows["mode"].notna().to_numpy(bool) | rows["model_params_b"].notna().to_numpy(bool)
    applies &= known & described & np.isfinite(count) & (count >= 1)
    cols["log_peak_tflops"] = np.log(peak_tflops)
    cols["log_bandwidth"] = np.log(bw / 1e9)
    cols["log_ridge"] = cols["log_peak_tflops"] - cols["log_bandwidth"]
    cols["log_memory_gb"] = np.log(mem_gb)
    cols["is_amd"] = (hw["known_hw"].to_numpy(bool) & ~np.isfinite(hw["compute_capability"].to_numpy(float))).astype(
        float
    )
    cols["is_sxm"] = hw["is_sxm"].to_numpy(float)
    cols["release_year"] = hw["release_year"].to_numpy(float)
    cols["log_tdp"] = hw["log_tdp_w"].to_numpy(float)
    cols["log_gpu_count"] = np.log(np.maximum(count, 1.0))
    cols["log_batch_per_gpu"] = np.log(batch / np.maximum(count, 1.0))
    for name in ("half", "fp8", "fp4", "fp32"):
        cols[f"precision_{name}"] = (group == name).astype(float)
    for name, values in cols.items():
        out[name] = np.where(applies, values, np.nan)
    out["applies"] = applies
    training_modes = {"pretrain", "full-ft", "lora", "qlora", "train-step"}
    out["mode_group"] = pd.Series(
        [None if m is None else ("training" if m in training_modes else "inference") for m in mode_of], dtype=object
    )
    out["work_known"] = applies & np.isfinite(log_t_phys)
    out["log_t_phys"] = np.where(out["work_known"], log_t_phys, np.nan)
    out["log_t_rel"] = np.where(applies, np.log(units) - np.log(np.maximum(count, 1.0) * peak), np.nan)
    workload = rows["workload"].astype("string").str.strip().str.lower().fillna("")
    ctx = workload + "\x1f" + pd.Series(mode_of, dtype=object).astype(str) + "\x1f" + pd.Series(group).astype(str)
    out["ctx"] = pd.Series(np.where(applies & (workload != "").to_numpy(bool), ctx, None), dtype=object)
    out["family"] = pd.Series(family, dtype=object)
    out["gpu_key"] = hw["gpu_key"].to_numpy(object)
    seconds = pd.to_numeric(rows.get("execution_time_s", pd.Series(np.nan, index=rows.index)), errors="coerce")
    out["y"] = np.log(seconds.to_numpy(float))
    return out
