"""Task + platform rows -> feature matrices: the one place that knows the encoding.

Training, prediction, ranking and importances all go through here.  The encoding is built to
generalise to GPUs nobody has measured: a GPU enters only through its hardware facts (from
:func:`fedopt_core.gpus.gpu_specs`), never through an id, and a workload only through runs of it
(the transfer model compares two runs of the *same* workload, so it never needs a workload id).

Target: ``log(execution_time_s / work_units)``, the log seconds per work unit; predictions are
multiplied back by ``work_units``.

Three matrices:

* :func:`pair_features` (target run, anchor run) -> what the transfer model needs to predict
  ``log t_target - log t_anchor`` for the same workload on two platforms: differences of log
  hardware facts, the target's own facts, the precision-aware compute peak, counts, batch sizes.
* :func:`scaling_features` (same GPU, two GPU counts) -> the multi-GPU scaling model.
* :func:`direct_features` (one run + a learned workload level) -> the fallback model for a
  workload measured only under another precision or software.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from fedopt_core.catalog import gpus
from fedopt_core.schema import CPU_ONLY

__all__ = [
    "DESCRIPTOR_NAMES",
    "DIRECT_FEATURE_NAMES",
    "ENCODED_COLUMNS",
    "HW_FEATURES",
    "PAIR_FEATURE_NAMES",
    "SCALING_FEATURE_NAMES",
    "TASK_FLAGS",
    "TRANSFER_FEATURE_NAMES",
    "compute_peak",
    "context_keys",
    "direct_features",
    "encode",
    "gpu_keys",
    "hardware_distance",
    "hardware_facts",
    "pair_features",
    "precision_class",
    "scaling_features",
    "transfer_features",
    "workload_descriptors",
]

# Facts whose ratios matter (a GPU with twice the bandwidth...): used as logs.  TechPowerUp's
# shader FP16 figure is left out: it is not the tensor-core peak, is inflated for Hopper and
# missing for Blackwell; it only stands in for the tensor peak of GPUs without tensor cores.
_LOG_FACTS = {
    "log_memory_bandwidth": "memory_bandwidth_gb_s",
    "log_fp32_tflops": "fp32_tflops",
    "log_sm_count": "sm_count",
    "log_l2_cache_mb": "l2_cache_mb",
    "log_tdp_w": "tdp_w",
    "log_memory_gb": "memory_gb",
}
HW_FEATURES = [
    *_LOG_FACTS,
    "log_tensor_tflops",
    "compute_capability",
    "release_year",
    "is_sxm",
    "is_mobile",
]
#: task_type values with their own flag; anything else sets neither.
TASK_FLAGS = ["training", "inference"]

PAIR_FEATURE_NAMES = [
    *[f"delta_{n}" for n in HW_FEATURES],
    *[f"target_{n}" for n in HW_FEATURES],
    "target_log_gpu_count",
    "delta_log_batch_size",
    "is_half_precision",
    "delta_log_peak_tflops",
    "target_log_peak_tflops",
    *[f"task_{t}" for t in TASK_FLAGS],
]
SCALING_FEATURE_NAMES = [
    *HW_FEATURES,
    "log_peak_tflops",
    "from_log_gpu_count",
    "to_log_gpu_count",
    "delta_log_batch_size",
    "is_half_precision",
    *[f"task_{t}" for t in TASK_FLAGS],
]
DIRECT_FEATURE_NAMES = [
    *HW_FEATURES,
    "log_peak_tflops",
    "log_gpu_count",
    "log_batch_per_gpu",
    "is_half_precision",
    "workload_level",
    *[f"task_{t}" for t in TASK_FLAGS],
]

#: Learned facts about a workload context, from the measured runs of it (see workload_descriptors).
DESCRIPTOR_NAMES = ["ctx_level", "ctx_slope_peak", "ctx_slope_bandwidth", "ctx_log_batch_per_gpu"]
#: The transfer model's matrix: the pair encoding plus the target's batch per GPU and what is known of its workload.
TRANSFER_FEATURE_NAMES = [*PAIR_FEATURE_NAMES, "target_log_batch_per_gpu", *DESCRIPTOR_NAMES]

#: Columns :func:`encode` adds (beside the hardware features).
ENCODED_COLUMNS = [
    "gpu_key",
    "gpu_name",
    "gpu_matched",
    "known_hw",
    "is_cpu",
    "workload_key",
    "ctx",
    "precision_class",
    "is_half_precision",
    "log_peak_tflops",
    "gpu_count",
    "log_gpu_count",
    "log_batch_size",
    "log_vcpus",
    *[f"task_{t}" for t in TASK_FLAGS],
    "work_units",
    "y",
]

# Precision labels people write, by the arithmetic they run on.  Mixed precision runs its
# matmuls in half precision, so "fp16_amp" and "bf16" are "half".
_PRECISION_WORDS = [
    ("fp8", "fp8"),
    ("int8", "int8"),
    ("int4", "int8"),
    ("bf16", "half"),
    ("fp16", "half"),
    ("half", "half"),
    ("amp", "half"),
    ("mixed", "half"),
    ("tf32", "fp32"),
    ("fp32", "fp32"),
    ("float32", "fp32"),
    ("single", "fp32"),
    ("fp64", "fp64"),
    ("double", "fp64"),
]


def precision_class(precision: pd.Series | np.ndarray | list) -> np.ndarray:
    """``half`` | ``fp32`` | ``fp8`` | ``int8`` | ``fp64`` | ``unknown`` per label (vectorised)."""
    text = pd.Series(np.asarray(precision, dtype=object)).astype("string").str.lower().fillna("")
    out = np.full(len(text), "unknown", dtype=object)
    for word, cls in reversed(_PRECISION_WORDS):  # earlier words win: "fp16_amp" is half, not fp32
        out[text.str.contains(word, regex=False).to_numpy(bool)] = cls
    return out


def _basic_name(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip().str.lower().str.replace(r"\s+", " ", regex=True)


def gpu_keys(gpu_type: pd.Series | np.ndarray | list) -> np.ndarray:
    """Identity of a GPU for matching runs: the canonical name, or ``?<raw>`` for an unknown one."""
    return hardware_facts(gpu_type)["gpu_key"].to_numpy(object)


@functools.lru_cache(maxsize=1)
def _tensor_ratio_by_architecture() -> dict[str, float]:
    """Median dense-tensor / FP32 peak per architecture, from the GPU catalogue's datasheet facts.

    Fills the tensor peak of GPUs whose datasheet figure is missing (laptop parts): same
    architecture, same ratio of tensor to shader throughput.
    """
    table = gpus.spec_table()
    ratio = table["tensor_fp16_tflops"] / table["fp32_tflops"]
    by_arch = ratio.groupby(table["architecture"]).median().dropna()
    return {str(k): float(v) for k, v in by_arch.items() if np.isfinite(v) and v > 0}


def _safe_log(values: pd.Series | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(arr)
    out[~np.isfinite(out)] = np.nan
    return out


def hardware_facts(gpu_type: pd.Series | np.ndarray | list) -> pd.DataFrame:
    """Hardware features per row (``HW_FEATURES``) plus ``gpu_key``, ``gpu_name``, ``gpu_matched``,
    ``known_hw`` and ``is_cpu``.  Each distinct name is resolved once."""
    raw = pd.Series(np.asarray(gpu_type, dtype=object))
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    uniq = pd.Series(list(uniques) + [None], dtype=object)
    is_cpu = _basic_name(uniq).isin([CPU_ONLY]).fillna(False).to_numpy(bool)
    specs = gpus.gpu_specs([u if isinstance(u, str) and not c else "" for u, c in zip(uniq, is_cpu, strict=True)])
    facts = pd.DataFrame(index=range(len(uniq)))
    for name, column in _LOG_FACTS.items():
        facts[name] = _safe_log(specs[column])
    arch_ratio = specs["architecture"].map(_tensor_ratio_by_architecture()).astype(float)
    tensor = specs["tensor_fp16_tflops"].fillna(specs["fp32_tflops"] * arch_ratio)
    # No tensor cores (Pascal): its half-precision rate is the shader FP16 rate.
    tensor = tensor.fillna(specs["fp16_tflops_nontensor"])
    facts["log_tensor_tflops"] = _safe_log(tensor)
    facts["compute_capability"] = specs["compute_capability"].to_numpy(float)
    facts["release_year"] = specs["release_year"].to_numpy(float)
    form = specs["form_factor"].astype(object)
    known = ~specs["matched"].isin(["unknown", "partition"]).to_numpy(bool) & ~is_cpu
    facts["is_sxm"] = np.where(known, (form == "SXM").to_numpy(float), np.nan)
    facts["is_mobile"] = np.where(known, (form == "other").to_numpy(float), np.nan)
    facts.loc[~known, HW_FEATURES] = np.nan
    basic = _basic_name(uniq).fillna("")
    key = np.where(known, specs["gpu_name"].astype(object), "?" + basic.to_numpy(object))
    key = np.where(is_cpu, CPU_ONLY, key)
    # object dtype on purpose: pandas would infer a string dtype and turn None into NaN
    facts["gpu_key"] = pd.Series(key, dtype=object)
    facts["gpu_name"] = pd.Series(np.where(known, specs["gpu_name"].astype(object), None), dtype=object)
    facts["gpu_matched"] = pd.Series(np.where(is_cpu, "cpu", specs["matched"].astype(object)), dtype=object)
    facts["known_hw"] = known
    facts["is_cpu"] = is_cpu
    # code -1 (missing name) picks the trailing None slot
    row = np.where(codes < 0, len(uniq) - 1, codes)
    return facts.iloc[row].reset_index(drop=True)


def compute_peak(hw: pd.DataFrame, precision: np.ndarray) -> np.ndarray:
    """Log of the compute peak that a run of this precision can use on this GPU."""
    tensor = hw["log_tensor_tflops"].to_numpy(float)
    fp32 = hw["log_fp32_tflops"].to_numpy(float)
    cc = hw["compute_capability"].to_numpy(float)
    # "fp32" training on Ampere+ runs its matmuls/convolutions in TF32 on the tensor cores at
    # half the FP16 tensor rate (the default in the NGC containers of the benchmark).
    tf32 = np.where(cc >= 8.0, tensor - np.log(2.0), fp32)
    fp8 = np.where(cc >= 8.9, tensor + np.log(2.0), tensor)
    return np.select(
        [precision == "half", precision == "fp8", precision == "int8", precision == "fp64"],
        [tensor, fp8, fp8, fp32 - np.log(2.0)],
        default=tf32,
    )


def _text_key(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip().str.lower().fillna("")


def context_keys(rows: pd.DataFrame) -> np.ndarray:
    """The comparable-runs key: task type, workload, precision class, software.

    Two runs share a key when only the platform differs, so their time ratio is a hardware
    ratio.  Rows without a workload get no key (None): they can be compared with nothing.
    """
    workload = _text_key(rows["workload"])
    sep = "\x1f"  # cannot occur in a stripped name, so keys never collide
    key = (
        _text_key(rows["task_type"])
        + sep
        + workload
        + sep
        + pd.Series(precision_class(rows["precision"]), index=rows.index).astype(str)
        + sep
        + _text_key(rows["software"])
    )
    return np.where(workload.to_numpy(object) == "", None, key.to_numpy(object))


def encode(rows: pd.DataFrame) -> pd.DataFrame:
    """Normalised run/task rows -> one encoded row each (same order, fresh index).

    ``y`` is the log seconds per work unit when ``execution_time_s`` is known, else NaN.
    Missing ``work_units`` counts as one unit (the whole job).
    """
    rows = rows.reset_index(drop=True)
    hw = hardware_facts(rows["gpu_type"])
    out = hw.copy()
    # Task type and workload: what is known of a workload's other contexts (precisions, software)
    # never crosses from training to inference, whose times are unrelated (about 236x for ResNet-50).
    workload_key = _text_key(rows["task_type"]) + "\x1f" + _text_key(rows["workload"])
    out["workload_key"] = pd.Series(workload_key.to_numpy(object), dtype=object)
    out["ctx"] = pd.Series(context_keys(rows), dtype=object)
    prec = precision_class(rows["precision"])
    out["precision_class"] = pd.Series(prec, dtype=object)
    out["is_half_precision"] = (prec == "half").astype(float)
    out["log_peak_tflops"] = compute_peak(hw, prec)
    count = pd.to_numeric(rows["gpu_count"], errors="coerce").to_numpy(float)
    out["gpu_count"] = count
    out["log_gpu_count"] = _safe_log(np.where(hw["is_cpu"].to_numpy(bool), np.nan, count))
    out["log_batch_size"] = _safe_log(pd.to_numeric(rows["batch_size"], errors="coerce"))
    out["log_vcpus"] = _safe_log(pd.to_numeric(rows.get("vcpus", pd.Series(np.nan, index=rows.index)), errors="coerce"))
    task = _text_key(rows["task_type"])
    for flag in TASK_FLAGS:
        out[f"task_{flag}"] = (task == flag).to_numpy(float)
    units = pd.to_numeric(rows["work_units"], errors="coerce").fillna(1.0).to_numpy(float)
    out["work_units"] = units
    seconds = (
        pd.to_numeric(rows["execution_time_s"], errors="coerce").to_numpy(float)
        if "execution_time_s" in rows
        else np.full(len(rows), np.nan)
    )
    out["y"] = _safe_log(seconds / units)
    return out


def _hw(frame: pd.DataFrame) -> np.ndarray:
    return frame[HW_FEATURES].to_numpy(float)


def _tasks(frame: pd.DataFrame) -> np.ndarray:
    return frame[[f"task_{t}" for t in TASK_FLAGS]].to_numpy(float)


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """One encoded column as an (n, 1) float array, for stacking into a feature matrix."""
    return frame[name].to_numpy(float)[:, None]


def pair_features(target: pd.DataFrame, anchor: pd.DataFrame) -> np.ndarray:
    """Transfer-model matrix for aligned (target, anchor) encoded rows; columns ``PAIR_FEATURE_NAMES``.

    The target's GPU count is the anchor's (the transfer model moves between GPUs at equal
    count); ``target_log_gpu_count`` and the batch difference are taken as given.
    """
    ht, ha = _hw(target), _hw(anchor)
    return np.hstack(
        [
            ht - ha,
            ht,
            _column(target, "log_gpu_count"),
            _column(target, "log_batch_size") - _column(anchor, "log_batch_size"),
            _column(target, "is_half_precision"),
            _column(target, "log_peak_tflops") - _column(anchor, "log_peak_tflops"),
            _column(target, "log_peak_tflops"),
            _tasks(target),
        ]
    )


def scaling_features(target: pd.DataFrame, source: pd.DataFrame) -> np.ndarray:
    """Scaling-model matrix: the target's GPU at the source's count -> at the target's count."""
    return np.hstack(
        [
            _hw(target),
            _column(target, "log_peak_tflops"),
            _column(source, "log_gpu_count"),
            _column(target, "log_gpu_count"),
            _column(target, "log_batch_size") - _column(source, "log_batch_size"),
            _column(target, "is_half_precision"),
            _tasks(target),
        ]
    )


def direct_features(rows: pd.DataFrame, workload_level: np.ndarray) -> np.ndarray:
    """Direct-model matrix: one run's facts plus its workload's learned level (NaN if unknown)."""
    return np.hstack(
        [
            _hw(rows),
            _column(rows, "log_peak_tflops"),
            _column(rows, "log_gpu_count"),
            _column(rows, "log_batch_size") - _column(rows, "log_gpu_count"),
            _column(rows, "is_half_precision"),
            np.asarray(workload_level, dtype=float)[:, None],
            _tasks(rows),
        ]
    )


def hardware_distance(target: pd.DataFrame, anchor: pd.DataFrame) -> np.ndarray:
    """How different two GPUs are (sum of |log ratios| of bandwidth, FP32 peak and SM count).

    Anchors on similar GPUs get more weight: their time ratio needs less extrapolation.
    """
    cols = ["log_memory_bandwidth", "log_fp32_tflops", "log_sm_count"]
    diff = np.abs(target[cols].to_numpy(float) - anchor[cols].to_numpy(float))
    return np.nan_to_num(diff, nan=1.0).sum(axis=1)


def workload_descriptors(pool: pd.DataFrame) -> pd.DataFrame:
    """Learned facts per comparable-runs key, from the runs in ``pool`` (vectorised normal equations).

    ``ctx_level``: median log seconds per unit per GPU; ``ctx_slope_*``: how log time moves with
    log compute peak and log bandwidth (ridge least squares with log GPU count); needs 5 runs.
    """
    ok = pool["known_hw"].to_numpy(bool) & pool["ctx"].notna().to_numpy(bool) & np.isfinite(pool["y"].to_numpy(float))
    p = pool.loc[ok]
    if p.empty:
        return pd.DataFrame(columns=DESCRIPTOR_NAMES)
    ctx = p["ctx"].to_numpy(object)
    codes, uniq = pd.factorize(ctx)
    k = len(uniq)
    y = p["y"].to_numpy(float)
    lc = p["log_gpu_count"].to_numpy(float)
    level = pd.Series(y + lc).groupby(codes).median().reindex(range(k)).to_numpy()
    bpg = pd.Series(p["log_batch_size"].to_numpy(float) - lc).groupby(codes).median().reindex(range(k)).to_numpy()
    A = np.column_stack(
        [np.ones(len(p)), p["log_peak_tflops"].to_numpy(float), p["log_memory_bandwidth"].to_numpy(float), lc]
    )
    A = np.nan_to_num(A)
    AtA = np.zeros((k, 4, 4))
    Aty = np.zeros((k, 4))
    np.add.at(AtA, codes, A[:, :, None] * A[:, None, :])
    np.add.at(Aty, codes, A * y[:, None])
    n = np.bincount(codes, minlength=k)
    ridge = 1e-2 * np.eye(4)
    ridge[0, 0] = 0.0
    coef = np.linalg.solve(AtA + ridge[None] + 1e-9 * np.eye(4)[None], Aty[:, :, None])[:, :, 0]
    out = pd.DataFrame(
        {
            "ctx_level": level,
            "ctx_slope_peak": np.where(n >= 5, coef[:, 1], np.nan),
            "ctx_slope_bandwidth": np.where(n >= 5, coef[:, 2], np.nan),
            "ctx_log_batch_per_gpu": bpg,
        },
        index=pd.Index(uniq, name="ctx"),
    )
    workload = pd.Series(p["workload_key"].to_numpy(object)).groupby(codes).first().reindex(range(k)).to_numpy(object)
    # A context with few runs (a new software version, a user's first run) borrows the
    # sensitivities its workload shows in its other contexts.
    for name in ("ctx_slope_peak", "ctx_slope_bandwidth", "ctx_log_batch_per_gpu"):
        by_workload = out[name].groupby(workload).transform("mean")
        out[name] = out[name].fillna(pd.Series(by_workload.to_numpy(float), index=out.index))
    out["workload_key"] = workload
    out["n_runs"] = n
    return out


def transfer_features(target: pd.DataFrame, anchor: pd.DataFrame, desc: pd.DataFrame) -> np.ndarray:
    """Transfer-model matrix (``TRANSFER_FEATURE_NAMES``): pair features, the target's batch per
    GPU, and the descriptors of the target's context (NaN where the context is unknown)."""
    d = desc.reindex(target["ctx"].to_numpy(object))[DESCRIPTOR_NAMES].to_numpy(float)
    bpg = (target["log_batch_size"].to_numpy(float) - target["log_gpu_count"].to_numpy(float))[:, None]
    return np.hstack([pair_features(target, anchor), bpg, d])


#: Plain words for the hardware and job facts the features are built from (see plain_feature_name).
_PLAIN_FACTS = {
    "memory_bandwidth": "memory bandwidth",
    "fp32_tflops": "FP32 compute",
    "tensor_tflops": "tensor-core compute",
    "peak_tflops": "peak compute at the job's precision",
    "sm_count": "number of SMs",
    "l2_cache_mb": "L2 cache size",
    "tdp_w": "power limit (TDP)",
    "memory_gb": "GPU memory",
    "compute_capability": "compute capability",
    "release_year": "release year",
    "is_sxm": "SXM board (not PCIe)",
    "is_mobile": "laptop GPU",
    "gpu_count": "GPU count",
    "batch_per_gpu": "batch per GPU",
    "batch_size": "batch size",
    "is_half_precision": "half precision (fp16/bf16)",
    "workload_level": "the workload's own speed",
    "task_training": "a training job",
    "task_inference": "an inference job",
    "ctx_level": "the workload's measured speed on other GPUs",
    "ctx_slope_peak": "how the workload's speed follows peak compute",
    "ctx_slope_bandwidth": "how the workload's speed follows memory bandwidth",
    "ctx_log_batch_per_gpu": "the batch per GPU of the workload's runs",
}


def plain_feature_name(name: str) -> str:
    """A feature's internal name in plain words: ``delta_log_memory_bandwidth`` is "memory
    bandwidth ratio (GPU asked / GPU measured)", ``target_log_gpu_count`` "GPU count of the
    machine asked about"; an unknown name comes back with spaces for underscores."""
    if name in _PLAIN_FACTS:
        return _PLAIN_FACTS[name]
    for prefix, pattern in (
        ("delta_log_", "{} ratio (GPU asked / GPU measured)"),
        ("delta_", "{} difference (GPU asked − GPU measured)"),
        ("target_log_", "{} of the machine asked about"),
        ("target_", "{} of the machine asked about"),
        ("from_log_", "{} of the measured run"),
        ("to_log_", "{} of the machine asked about"),
        ("log_", "{}"),
    ):
        if name.startswith(prefix):
            rest = name[len(prefix) :]
            return pattern.format(_PLAIN_FACTS.get(rest, rest.replace("_", " ")))
    return name.replace("_", " ")
