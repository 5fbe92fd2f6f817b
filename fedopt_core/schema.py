"""The run schema: field names, types, and the one validation path for every channel.

A run from the form, a CSV row, the CLI, ``track()`` and the benchmark loader all pass through
:func:`validate_frame` (or :func:`validate_run`, its one-row face), so a rule lives here once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fedopt_core.errors import ValidationError

TASK_FIELDS = [
    "task_type",
    "workload",
    "precision",
    "batch_size",
    "work_units",
    "software",
    # What the job is, as people describe an LLM job (see MODES, WORK_UNITS).
    "mode",
    "work_unit",
    "model_params_b",
    "active_params_b",
    "seq_len",
    "prompt_tokens",
    "output_tokens",
    "concurrency",
    "input_size_mb",
    "output_size_mb",
    "memory_required_gb",
    "cpu_cores_required",
    "gpu_memory_required_gb",
    "is_batch_processing",
]
PLATFORM_FIELDS = [
    "platform",
    "provider",
    "gpu_type",
    "gpu_count",
    "gpu_memory_gb",
    "cpu_type",
    "vcpus",
    "ram_gb",
    "network_speed_mbps",
    "price_per_hour_usd",
]
OUTCOME_FIELDS = ["execution_time_s", "success"]
RUN_FIELDS = TASK_FIELDS + PLATFORM_FIELDS + OUTCOME_FIELDS
#: Fields a stored run carries besides the run schema (kept with it, not part of the task).
META_FIELDS = ["started_at", "logged_by", "notes"]

#: Task types the faces offer (free text is still accepted: these are the ones the model has flags for).
TASK_TYPES = ("training", "fine-tuning", "inference", "batch")

#: How a model is run.  Training modes first, then inference (MLPerf's scenarios, a serving
#: engine at a concurrency cap), then NeuSight's single-batch measurements.
TRAINING_MODES = ("pretrain", "full-ft", "lora", "qlora", "train-step")
INFERENCE_MODES = ("offline", "server", "interactive", "serving", "forward")
MODES = TRAINING_MODES + INFERENCE_MODES
#: What one of ``work_units`` is.  "run" is a whole job to a target (MLPerf's time to train).
WORK_UNITS = ("tokens", "samples", "images", "steps", "run")
#: Words people write for a mode or a unit, and what they mean.
_MODE_ALIASES = {
    "pretraining": "pretrain",
    "pre-train": "pretrain",
    "pre-training": "pretrain",
    "full": "full-ft",
    "full-finetune": "full-ft",
    "full_ft": "full-ft",
    "fullft": "full-ft",
    "sft": "full-ft",
    "finetune": "full-ft",
    "fine-tune": "full-ft",
    "fine-tuning": "full-ft",
    "q-lora": "qlora",
    "batch": "offline",
    "serve": "serving",
    "online": "server",
    "chat": "interactive",
    "train_step": "train-step",
}
_UNIT_ALIASES = {
    "token": "tokens",
    "sample": "samples",
    "sequences": "samples",
    "sequence": "samples",
    "queries": "samples",
    "image": "images",
    "step": "steps",
    "iterations": "steps",
    "runs": "run",
    "job": "run",
}
#: Precision labels the faces offer, most common first (features.precision_class reads any label).
PRECISIONS = ("fp16_amp", "fp32", "bf16")

#: Characters no stored text may hold: C0 controls and DEL, C1 controls (ESC, BEL, ...), and the
#: bidirectional overrides that make text display in another order than it is stored.  Free-text
#: notes may also hold line breaks and tabs.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
#: Longest text of a run's name-like fields (workload, GPU, platform, software, ...) and of its notes.
MAX_NAME_CHARS = 200
MAX_NOTES_CHARS = 2000

#: The gpu_type of a platform without a GPU.
CPU_ONLY = "cpu"

STRING_FIELDS = [
    "task_type",
    "workload",
    "precision",
    "software",
    "mode",
    "work_unit",
    "platform",
    "provider",
    "gpu_type",
    "cpu_type",
]
#: Text fields with a closed set of values (aliases accepted): field -> (values, aliases).
CHOICE_FIELDS = {"mode": (MODES, _MODE_ALIASES), "work_unit": (WORK_UNITS, _UNIT_ALIASES)}
BOOL_FIELDS = ["is_batch_processing", "success"]
NUMERIC_FIELDS = [f for f in RUN_FIELDS if f not in STRING_FIELDS and f not in BOOL_FIELDS]

#: Numbers that must be strictly positive when given (a zero time or size is a typo, not a run).
POSITIVE_FIELDS = [
    "execution_time_s",
    "work_units",
    "batch_size",
    "model_params_b",
    "active_params_b",
    "seq_len",
    "output_tokens",
    "concurrency",
]
#: Numbers that must be whole when given.
WHOLE_FIELDS = ["gpu_count", "seq_len", "concurrency"]
#: Beyond these a value is a typo or a unit slip, not a job (the largest clusters have ~1e5 GPUs,
#: the largest models ~1e4 B parameters); refusing them keeps 1e20 GPUs out of every sum.
#: Every number has one (a test checks); the dashboard's forms use the same limits.
UPPER_LIMITS = {
    "gpu_count": 100_000,
    "model_params_b": 1_000_000,
    "active_params_b": 1_000_000,
    "seq_len": 100_000_000,
    "prompt_tokens": 100_000_000,
    "output_tokens": 100_000_000,
    "concurrency": 10_000_000,
    "batch_size": 1e12,
    "work_units": 1e18,  # tokens of the largest training runs are ~1e14
    "execution_time_s": 1e9,  # about 32 years
    "input_size_mb": 1e10,  # 10 EB
    "output_size_mb": 1e10,
    "memory_required_gb": 1e7,
    "gpu_memory_required_gb": 1e4,
    "cpu_cores_required": 1e7,
    "gpu_memory_gb": 1e4,
    "vcpus": 1e6,
    "ram_gb": 1e7,
    "network_speed_mbps": 1e8,  # 100 Tbit/s
    "price_per_hour_usd": 1e6,
}
#: Numbers that may be zero but never negative.
NON_NEGATIVE_FIELDS = [
    "input_size_mb",
    "output_size_mb",
    "memory_required_gb",
    "cpu_cores_required",
    "gpu_memory_required_gb",
    "gpu_count",
    "gpu_memory_gb",
    "vcpus",
    "ram_gb",
    "network_speed_mbps",
    "price_per_hour_usd",
    "prompt_tokens",
]

FIELD_DESCRIPTIONS = {
    "task_type": "training, inference, batch, …",
    "workload": "model or job name, e.g. resnet50",
    "precision": "fp32, fp16_amp, bf16, …",
    "batch_size": "global batch size",
    "work_units": "how much work, in work_unit; time scales with it",
    "work_unit": "what one work unit is: " + ", ".join(WORK_UNITS),
    "mode": "how the model runs: " + ", ".join(MODES),
    "model_params_b": "model size, billions of parameters",
    "active_params_b": "parameters active per token, billions (mixture of experts)",
    "seq_len": "tokens per sequence (context length)",
    "prompt_tokens": "input tokens per request (inference)",
    "output_tokens": "generated tokens per request (inference)",
    "concurrency": "requests served at once (inference)",
    "software": "framework or container version",
    "gpu_type": f"GPU model, or '{CPU_ONLY}' for a CPU-only machine",
    "gpu_count": "number of GPUs used",
    "execution_time_s": "measured wall-clock seconds",
}

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


@dataclass(frozen=True)
class RowError:
    """Why one input row was refused.  ``line`` is the 1-based line of the source file, if any."""

    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.field}: {self.message}"


def _to_bool(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse booleans leniently; returns (values as object with None for missing, invalid mask)."""
    if series.dtype == bool:
        return series.astype(object), pd.Series(False, index=series.index)
    text = series.astype("string").str.strip().str.lower()
    values = pd.Series(None, index=series.index, dtype=object)
    values[text.isin(_TRUE).fillna(False).to_numpy(bool)] = True
    values[text.isin(_FALSE).fillna(False).to_numpy(bool)] = False
    missing = text.isna() | (text == "") | (text == "nan") | (text == "none")
    invalid = values.isna() & ~missing
    return values, invalid.fillna(False).astype(bool)


def normalise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with every run field present and coerced (strings object, numbers float, flags bool).

    Values that cannot be coerced become missing; use :func:`validate_frame` to report them.
    """
    out = frame.copy()
    for name in RUN_FIELDS:
        if name not in out.columns:
            out[name] = None
    for name in STRING_FIELDS:
        col = out[name].astype(object)
        text = col.where(col.isna(), col.astype(str).str.strip())
        out[name] = text.where(text.notna() & (text != ""), None).astype(object)
    for name, (_, aliases) in CHOICE_FIELDS.items():
        word = out[name].astype("string").str.lower().str.replace(" ", "-", regex=False)
        word = word.replace(aliases)
        out[name] = word.astype(object).where(word.notna(), None)
    for name in NUMERIC_FIELDS:
        out[name] = pd.to_numeric(out[name], errors="coerce").astype(float)
    for name in BOOL_FIELDS:
        out[name] = _to_bool(out[name])[0]
    if "gpu_type" in out:
        is_cpu = out["gpu_type"].astype("string").str.lower().isin({"cpu", "none", "cpu-only", "cpu only"})
        out.loc[is_cpu.fillna(False).to_numpy(bool), "gpu_type"] = CPU_ONLY
    return out


def validate_frame(
    frame: pd.DataFrame,
    *,
    require_outcome: bool = True,
    line_numbers: pd.Series | np.ndarray | None = None,
) -> tuple[pd.DataFrame, list[RowError]]:
    """Split ``frame`` into good rows (normalised) and errors, one per refused row.

    Vectorised: each rule is one column operation.  ``line_numbers`` gives the source line of
    each row (for CSV imports); errors then carry it.  ``success`` defaults to True.
    """
    raw = frame.reset_index(drop=True)
    lines = (
        pd.Series(np.asarray(line_numbers), dtype="Int64")
        if line_numbers is not None
        else pd.Series([None] * len(raw), dtype="Int64")
    )
    out = normalise_frame(raw)
    first_error: dict[int, RowError] = {}

    def refuse(mask: pd.Series | np.ndarray, field: str, message: str) -> None:
        for pos in np.flatnonzero(np.asarray(mask, dtype=bool)):
            if pos not in first_error:
                line = lines.iloc[pos]
                first_error[pos] = RowError(None if pd.isna(line) else int(line), field, message)

    for name in NUMERIC_FIELDS:
        if name not in raw.columns:
            continue
        given = raw[name].notna() & (raw[name].astype(str).str.strip() != "")
        refuse(given & out[name].isna(), name, "is not a number")
        value = out[name]
        refuse(np.isinf(value.fillna(0)), name, "must be finite")
    for name in BOOL_FIELDS:
        if name in raw.columns:
            refuse(_to_bool(raw[name])[1], name, "must be true or false")

    for name, (values, _) in CHOICE_FIELDS.items():
        refuse(out[name].notna() & ~out[name].isin(values), name, "must be one of " + ", ".join(values))

    gpu_missing = out["gpu_type"].isna()
    refuse(gpu_missing, "gpu_type", f"is required (a GPU model, or '{CPU_ONLY}')")
    refuse(out["gpu_count"].isna(), "gpu_count", "is required")
    count = out["gpu_count"]
    for name in WHOLE_FIELDS:
        value = out[name]
        fraction = value.notna() & np.isfinite(value.fillna(0)) & (value != np.floor(value))
        refuse(fraction, name, "must be a whole number")
    for name, limit in UPPER_LIMITS.items():
        refuse(out[name] > limit, name, f"must be at most {limit:,.0f}")
    active, total = out["active_params_b"], out["model_params_b"]
    refuse(active > total * (1 + 1e-9), "active_params_b", "cannot exceed model_params_b (the total)")
    is_cpu = out["gpu_type"] == CPU_ONLY
    refuse(~is_cpu & out["gpu_type"].notna() & (count < 1), "gpu_count", "must be at least 1 for a GPU platform")

    if require_outcome:
        refuse(out["execution_time_s"].isna(), "execution_time_s", "is required (it is missing or NaN)")
    for name in POSITIVE_FIELDS:
        refuse(out[name] <= 0, name, "must be greater than zero")
    for name in NON_NEGATIVE_FIELDS:
        refuse(out[name] < 0, name, "must not be negative")

    out["success"] = out["success"].where(out["success"].notna(), True).astype(bool)
    out.loc[is_cpu.to_numpy(bool), "gpu_count"] = out.loc[is_cpu.to_numpy(bool), "gpu_count"].fillna(0)
    bad = sorted(first_error)
    good = out.drop(index=bad).reset_index(drop=True)
    return good, [first_error[pos] for pos in bad]


def validate_run(run: Mapping[str, Any], *, require_outcome: bool = True) -> dict[str, Any]:
    """Validate one run; returns the cleaned values or raises :class:`ValidationError`."""
    good, errors = validate_frame(pd.DataFrame([dict(run)]), require_outcome=require_outcome)
    if errors:
        raise ValidationError(errors[0].field, errors[0].message)
    record = good.iloc[0].to_dict()
    return {k: (None if _is_missing(v) else v) for k, v in record.items()}


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


class Task(dict):
    """A job's task fields after :func:`validate_task`: cleaned values, missing ones left out.

    A plain dict to every reader; its type says it was validated, so the functions a request
    passes it through (advisor, ranking, planner) do not validate it again.  ``assumed``: what
    :func:`fedopt_core.runs.jobs.job_task` filled in for the job, said with every answer.
    """

    assumed: tuple[str, ...] = ()


def validate_task(values: Mapping[str, Any]) -> Task:
    """The task fields of ``values``, validated like a run's (bad values raise :class:`ValidationError`).

    Platform and outcome fields are ignored (the platforms a task is ranked on own those); a
    :class:`Task` is returned as it is.
    """
    if isinstance(values, Task):
        return values
    if not isinstance(values, Mapping):
        raise TypeError(f"task must be a dict of task fields, got {type(values).__name__}")
    task = {k: v for k, v in values.items() if k in TASK_FIELDS}
    # A neutral platform so the run validation applies; only the task fields are kept.
    clean = validate_run({**task, "gpu_type": CPU_ONLY, "gpu_count": 0}, require_outcome=False)
    return Task({k: v for k, v in clean.items() if k in TASK_FIELDS and v is not None})


def task_on_platforms(task: Mapping[str, Any], platforms: pd.DataFrame) -> pd.DataFrame:
    """One row per platform carrying the task's fields: what a predictor is asked about.

    The platform frame owns the platform fields (``gpu_type``, ``gpu_count``, ``price_per_hour_usd``,
    ...): a task key that names one is ignored, so a ranking never runs a job on a GPU it was not
    offered.  The one task x platform join; ranking and the shard planner both use it.
    """
    rows = platforms.reset_index(drop=True).copy()
    for key, value in task.items():
        if key not in PLATFORM_FIELDS:
            rows[key] = value
    return rows


def empty_frame() -> pd.DataFrame:
    """A frame with the run columns and no rows."""
    return normalise_frame(pd.DataFrame(columns=RUN_FIELDS))


#: The fields that make a run's identity: the same task on the same platform with the same
#: measured time and start is the same run, however many times its file is imported.
#: The fields of the first release, in their order: a run's key must not change when the schema grows.
_FIRST_FIELDS = [
    *TASK_FIELDS[: TASK_FIELDS.index("mode")],
    *TASK_FIELDS[TASK_FIELDS.index("input_size_mb") :],
    *PLATFORM_FIELDS,
    *OUTCOME_FIELDS,
]
#: Fields added later: they join a row's key only when the row sets one of them, so a run
#: stored before they existed keeps its key (and re-importing its file still adds nothing).
_LATER_FIELDS = [f for f in RUN_FIELDS if f not in _FIRST_FIELDS]
IDENTITY_FIELDS = RUN_FIELDS


def _canonical_text(frame: pd.DataFrame, fields: list[str]) -> pd.Series:
    """One text per row joining the fields' canonical forms (vectorised; no Python per cell)."""
    parts = []
    for name in fields:
        col = frame[name] if name in frame.columns else pd.Series([None] * len(frame), index=frame.index)
        if name in NUMERIC_FIELDS:
            # Rounded floats as text: 1.0, "1" and 1 give the same key.
            num = pd.to_numeric(col, errors="coerce").astype(float).round(9)
            text = num.astype(str).where(num.notna(), "")
        else:
            text = col.astype("string").str.strip().str.lower().fillna("").astype(object)
        parts.append(text)
    return parts[0].str.cat(parts[1:], sep="\x1f") if len(parts) > 1 else parts[0]


def run_keys(frame: pd.DataFrame, extra: pd.Series | None = None) -> pd.Series:
    """A stable identity per row (sha1 of its canonical field values, plus ``extra`` if given)."""
    text = _keyed_text(frame, _FIRST_FIELDS)
    if extra is not None:
        text = text + "\x1e" + extra.astype(str).reindex(text.index).fillna("")
    return text.map(lambda t: hashlib.sha1(t.encode("utf-8")).hexdigest())


def task_keys(frame: pd.DataFrame) -> pd.Series:
    """Identity of (task, platform) without the outcome: links a prediction to later actual runs."""
    fields = [
        "task_type",
        "workload",
        "precision",
        "batch_size",
        "work_units",
        "software",
        "gpu_type",
        "gpu_count",
        "platform",
    ]
    text = _keyed_text(frame, fields)
    return text.map(lambda t: hashlib.sha1(t.encode("utf-8")).hexdigest())


def _keyed_text(frame: pd.DataFrame, first: list[str]) -> pd.Series:
    """The canonical text of ``first``, then of the later fields on rows that set any of them."""
    text = _canonical_text(frame, first)
    later = [f for f in _LATER_FIELDS if f in frame.columns]
    if not later:
        return text
    tail = _canonical_text(frame, later)
    has_any = frame[later].notna().any(axis=1)
    return text.where(~has_any, text + "\x1d" + tail)


def validated_rows(rows: pd.DataFrame, *, require_outcome: bool) -> pd.DataFrame:
    """Validated, normalised rows in input order; the first bad value raises ValidationError."""
    if not isinstance(rows, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(rows).__name__}")
    raw = rows.reset_index(drop=True)
    good, errors = validate_frame(raw, require_outcome=require_outcome)
    if errors:
        first = errors[0]
        pos = _first_bad_position(raw, first, require_outcome)
        where = f"row {pos}: " if pos is not None else ""
        raise ValidationError(first.field, f"{where}{first.message}")
    return good


def _first_bad_position(raw: pd.DataFrame, error: RowError, require_outcome: bool) -> int | None:
    for pos in range(len(raw)):  # only on the error path, to say which row
        _, errs = validate_frame(raw.iloc[[pos]], require_outcome=require_outcome)
        if errs:
            return pos
    return None
