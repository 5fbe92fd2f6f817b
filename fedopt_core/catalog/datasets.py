"""Loaders for public benchmark formats, mapped to the run schema.

* Lambda's GPU benchmark (``lambdal/deeplearning-benchmark``) as collected in
  ``gpu_benchmarks.csv`` (see ``SOURCES.md`` in the shared data folder).  One benchmark row is
  one measured (system, model, precision): the time to train on one million of the model's units.
* The LLM runs table ``llm_runs.csv`` (MLPerf Training and Inference, llm-foundry,
  Megatron-Bridge/NeMo, ML.ENERGY, NeuSight): one row per measured training, fine-tuning or
  inference configuration, with its provenance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fedopt_core import schema
from fedopt_core.csvfiles import CsvFormatError, read_table

__all__ = [
    "LLM_RUNS_COLUMNS",
    "LLM_RUNS_MAPPING",
    "LLM_THROUGHPUT_TOKENS",
    "LAMBDA_BENCHMARK_MAPPING",
    "LAMBDA_WORK_UNITS",
    "lambda_benchmark_runs",
    "lambda_provider",
    "llm_runs",
    "load_lambda_benchmarks",
    "load_llm_runs",
]

#: Run field -> column of ``gpu_benchmarks.csv``.
LAMBDA_BENCHMARK_MAPPING: dict[str, str] = {
    "workload": "model",
    "precision": "precision",
    "batch_size": "batch_size_global",
    "software": "table_version",
    "gpu_type": "gpu_name",
    "gpu_count": "gpu_count",
    "gpu_memory_gb": "gpu_memory_gib",
    "cpu_type": "cpu_model",
    "ram_gb": "host_ram_gib",
    "platform": "system_name",
    "price_per_hour_usd": "lambda_price_usd_hr_v8",
    "execution_time_s": "time_per_1M_units_s",
}
#: ``time_per_1M_units_s`` is the time for one million units (images, tokens, samples).
LAMBDA_WORK_UNITS = 1e6
# Columns kept beside the run fields: they say what a unit is and where the row came from.
_EXTRA_COLUMNS = {"throughput_unit": "work_unit_name", "platform": "platform_kind", "run_date": "run_date"}

# The benchmark's `platform` column says what kind of machine a system is; the run schema wants
# who rents it out.  Lambda Cloud and 1-Click-Cluster nodes are rentable from Lambda; on-prem
# workstations and OEM servers are machines Lambda tested, not something one can rent.
_PROVIDER_RULES: list[tuple[str, str]] = [
    ("lambda cloud", "lambda"),
    ("1-click", "lambda"),
    ("aws", "aws"),
    ("linode", "linode"),
    ("on-prem", "on-prem"),
    ("oem", "oem"),
]


def lambda_provider(platform_kind: pd.Series) -> pd.Series:
    """Provider per benchmark ``platform`` value (``"lambda"`` for Lambda Cloud rows)."""
    text = platform_kind.astype("string").str.lower().fillna("")
    out = pd.Series([None] * len(text), index=text.index, dtype=object)
    for needle, provider in _PROVIDER_RULES:
        hit = text.str.contains(needle, regex=False).to_numpy(bool) & out.isna().to_numpy(bool)
        out[hit] = provider
    # Anything new: its first word, so a future "CoreWeave cloud" row becomes "coreweave".
    rest = out.isna().to_numpy(bool) & (text != "").to_numpy(bool)
    out[rest] = text[rest].str.split().str[0].to_numpy(object)
    return out


def lambda_benchmark_runs(raw: pd.DataFrame) -> pd.DataFrame:
    """Map rows of ``gpu_benchmarks.csv`` (as read by pandas) to the run schema.

    No row is dropped or validated here (``load_lambda_benchmarks`` and the run importer do
    that), so a caller sees every source row.  Column names are matched case-insensitively.
    """
    by_lower = {str(c).lower(): c for c in raw.columns}
    missing = [col for col in LAMBDA_BENCHMARK_MAPPING.values() if col.lower() not in by_lower]
    if missing:
        raise CsvFormatError(f"{missing[0]}: column missing from the Lambda benchmark table")
    out = pd.DataFrame(index=raw.index)
    out["task_type"] = "training"
    out["work_units"] = LAMBDA_WORK_UNITS
    for field, column in LAMBDA_BENCHMARK_MAPPING.items():
        out[field] = raw[by_lower[column.lower()]].to_numpy()
    # The source marks unknown batch sizes with 0 ("batch size missing/0" in its notes): missing, not zero.
    batch = pd.to_numeric(out["batch_size"], errors="coerce")
    out["batch_size"] = batch.where(batch > 0, np.nan)
    kind_col = by_lower.get("platform")
    kind = raw[kind_col] if kind_col is not None else pd.Series([None] * len(raw), index=raw.index)
    out["provider"] = lambda_provider(kind)
    out["success"] = True
    extras = []
    for column, name in _EXTRA_COLUMNS.items():
        if column in by_lower:
            out[name] = raw[by_lower[column]].astype(object).to_numpy()
            extras.append(name)
    if "work_unit_name" in out:  # "images/s" is a throughput unit; one work unit is an image
        unit = out["work_unit_name"]
        out["work_unit_name"] = unit.where(
            unit.isna(),
            unit.astype(str)
            .str.replace(r"^.*/s \(.*;\s*(.+)\)$", r"\1", regex=True)
            .str.replace(r"/s$", "", regex=True),
        )
    mapped = schema.normalise_frame(out)
    # Keep a value that is not a number as given: validation then says "is not a number" for its line
    # instead of reporting a required value as missing.
    for name in schema.NUMERIC_FIELDS:
        if name in out.columns:
            given = out[name].notna() & (out[name].astype(str).str.strip() != "")
            unreadable = given & mapped[name].isna()
            if unreadable.any():
                mapped[name] = mapped[name].astype(object).where(~unreadable, out[name])
    return mapped[[*schema.RUN_FIELDS, *extras]]


def load_lambda_benchmarks(path: str | Path) -> pd.DataFrame:
    """Read ``gpu_benchmarks.csv`` and return its rows as runs (validated by ``schema``).

    Raises ``FileNotFoundError`` naming the path when it does not exist, and ``ValueError``
    naming the line and field of the first bad row (the source is expected to be clean, so a
    bad row means a wrong or damaged file, and silently dropping it would lose data).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Lambda benchmark file not found: {path}")
    raw, unreadable = read_table(path)
    if unreadable:
        more = f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
        raise ValueError(f"{unreadable[0]}{more}")
    mapped = lambda_benchmark_runs(raw.drop(columns="_line"))
    good, errors = schema.validate_frame(mapped, require_outcome=True, line_numbers=raw["_line"].to_numpy())
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ValueError(f"{path}: line {first.line}: {first.field}: {first.message}{more}")
    return good


# ---------------------------------------------------------------------------- llm_runs.csv

#: Run field -> column of ``llm_runs.csv`` copied as given.
LLM_RUNS_MAPPING: dict[str, str] = {
    "task_type": "task_type",
    "workload": "workload",
    "model_params_b": "model_params_b",
    "active_params_b": "active_params_b",
    "seq_len": "seq_len",
    "mode": "mode",
    "precision": "precision",
    "gpu_type": "gpu_type",
    "gpu_count": "gpu_count",
    "software": "software",
    "platform": "system_name",
}
#: Columns that identify the table (the run CSV importer tells the formats apart by them).
LLM_RUNS_COLUMNS = ["source", "workload", "gpu_type", "tokens_per_s_total", "execution_time_s"]
#: A throughput-only row (tokens/s, no measured time) becomes the time to process this many tokens.
LLM_THROUGHPUT_TOKENS = 1e6


def llm_runs(raw: pd.DataFrame) -> pd.DataFrame:
    """Map rows of ``llm_runs.csv`` (as read by pandas) to the run schema, in order.

    The mapping (as the table's sources define their columns):

    * task type, workload, model size, sequence length, mode, precision, GPU, count and software
      as given; ``platform`` is the ``system_name``;
    * ``batch_size`` is ``global_batch``, else ``max_num_seqs`` (a serving engine's concurrency
      cap, also kept as ``concurrency``); ``output_tokens`` is ``avg_output_len``, else (MLPerf
      inference, whose unit is a sample) the tokens per sample, ``tokens_per_s_total /
      samples_per_s_total``;
    * where ``execution_time_s`` is given, it is kept with ``work_units``/``work_unit`` as given
      (MLPerf Training gives the time to train: one ``run``); otherwise the row is a throughput,
      and becomes the time for :data:`LLM_THROUGHPUT_TOKENS` tokens at ``tokens_per_s_total``;
    * ``notes`` names the source, repository, commit and file of the row.

    No row is dropped or validated here (:func:`load_llm_runs` and the run importer do that).
    """
    by_lower = {str(c).lower(): c for c in raw.columns}
    missing = [c for c in [*LLM_RUNS_MAPPING.values(), *LLM_RUNS_COLUMNS] if c.lower() not in by_lower]
    if missing:
        raise CsvFormatError(f"{missing[0]}: column missing from the LLM runs table")

    def column(name: str) -> pd.Series:
        found = by_lower.get(name.lower())
        return raw[found] if found is not None else pd.Series([None] * len(raw), index=raw.index, dtype=object)

    def number(name: str) -> pd.Series:
        return pd.to_numeric(column(name), errors="coerce")

    out = pd.DataFrame(index=raw.index)
    for field, name in LLM_RUNS_MAPPING.items():
        out[field] = column(name).to_numpy()
    seqs = number("max_num_seqs")
    out["batch_size"] = number("global_batch").fillna(seqs)
    out["concurrency"] = seqs
    per_sample = number("tokens_per_s_total") / number("samples_per_s_total")
    is_samples = column("work_unit").astype("string").str.strip().str.lower().eq("samples").fillna(False)
    out["output_tokens"] = number("avg_output_len").fillna(per_sample.where(is_samples.to_numpy(bool)))

    def given(name: str) -> pd.Series:
        values = column(name)
        return values.notna() & (values.astype(str).str.strip() != "")

    timed = given("execution_time_s")
    out["execution_time_s"] = column("execution_time_s").where(
        timed, LLM_THROUGHPUT_TOKENS / number("tokens_per_s_total")
    )
    # A measured time without a unit is a whole job (MLPerf Training's time to train).
    out["work_units"] = column("work_units").where(given("work_units"), 1.0).where(timed, LLM_THROUGHPUT_TOKENS)
    out["work_unit"] = column("work_unit").where(given("work_unit"), "run").where(timed, "tokens")
    out["success"] = True
    provenance = (
        column("source").astype(str)
        + ": "
        + column("source_repo").astype(str)
        + "@"
        + column("source_commit").astype(str).str[:8]
        + " "
        + column("source_path").astype(str)
    )
    out["notes"] = provenance.to_numpy(object)
    mapped = schema.normalise_frame(out)
    mapped["notes"] = out["notes"].to_numpy(object)
    return mapped[[*schema.RUN_FIELDS, "notes"]]


def load_llm_runs(path: str | Path) -> pd.DataFrame:
    """Read ``llm_runs.csv`` and return its rows as runs (the run schema, validated).

    Raises ``FileNotFoundError`` naming the path when it does not exist, and ``ValueError``
    naming the line and field of the first bad row (see :func:`load_lambda_benchmarks`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LLM runs file not found: {path}")
    raw, unreadable = read_table(path)
    if unreadable:
        more = f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
        raise ValueError(f"{unreadable[0]}{more}")
    mapped = llm_runs(raw.drop(columns="_line"))
    good, errors = schema.validate_frame(mapped, require_outcome=True, line_numbers=raw["_line"].to_numpy())
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ValueError(f"{path}: line {first.line}: {first.field}: {first.message}{more}")
    good["notes"] = mapped["notes"].to_numpy(object)
    return good
