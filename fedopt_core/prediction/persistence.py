"""The predictor's file format: a zip of ``manifest.json`` and ``arrays.npz``, never a pickle.

Arrays are loaded with ``allow_pickle=False`` and checked against a SHA-256 in the manifest; the
manifest may set only the learned attributes named in :data:`SAVED_ATTRIBUTES`.  So loading a
file can never execute code: anything else raises :class:`~fedopt_core.errors.ModelFormatError`.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from fedopt_core.errors import ModelFormatError
from fedopt_core.prediction.anchors import ANCHOR_NUM, ANCHOR_TEXT
from fedopt_core.prediction.physics import MODE_GROUPS, PHYSICS_NUM, PHYSICS_TEXT, Efficiency, PhysicsModel
from fedopt_core.prediction.trees import ArrayTrees

__all__ = ["ALGORITHM", "FORMAT_NAME", "FORMAT_VERSION", "SAVED_ATTRIBUTES", "from_bytes", "to_bytes"]

Model = TypeVar("Model")

FORMAT_NAME = "fedopt-performance-predictor"
FORMAT_VERSION = 1
ALGORITHM = "transfer-gbm-1"

#: The learned attributes a model file may set (anything else in a file is refused).
SAVED_ATTRIBUTES = (
    "n_runs_",
    "n_skipped_",
    "skipped_reasons_",
    "n_anchor_configs_",
    "n_gpu_models_",
    "n_training_pairs_",
    "method_",
    "fallback_reason_",
    "model_version_",
    "feature_names_",
    "calibration_",
    "workload_scale_",
    "global_scale_",
    "suspects_",
    "direct_offset_",
)


def _texts(column: pd.Series) -> list[str | None]:
    return [None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v) for v in column.tolist()]


def to_bytes(self: Any) -> bytes:
    """The fitted predictor as a zip of ``manifest.json`` + ``arrays.npz`` (no pickles)."""
    self._require_fitted()
    arrays: dict[str, np.ndarray] = {}
    trees: dict[str, Any] = {}
    for name in ("transfer_", "scaling_", "direct_"):
        model = getattr(self, name)
        if model is not None:
            arr, meta = model.to_arrays(name)
            arrays.update(arr)
            trees[name] = meta
    sample = self.importance_sample_
    if sample is not None:
        arr, meta = sample["model"].to_arrays("importance_model")
        arrays.update(arr)
        arrays["importance.X"] = sample["X"]
        arrays["importance.y"] = sample["y"]
        trees["importance_model"] = meta
    physics = getattr(self, "physics_", None)
    physics_text: dict[str, list[str | None]] | None = None
    if physics is not None:
        parts = {"shared": physics.efficiency_.shared, **physics.efficiency_.models}
        for group, model in parts.items():
            arr, meta = model.to_arrays(f"physics_{group}_")
            arrays.update(arr)
            trees[f"physics_{group}_"] = meta
        for c in PHYSICS_NUM:
            arrays[f"physics_runs.{c}"] = physics.runs_[c].to_numpy(float)
        physics_text = {c: _texts(physics.runs_[c]) for c in PHYSICS_TEXT}
    table = self.anchors_
    for c in ANCHOR_NUM:
        arrays[f"anchors.{c}"] = table[c].to_numpy(float)
    anchors_text = {c: _texts(table[c]) for c in ANCHOR_TEXT}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    npz = buf.getvalue()
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "algorithm": ALGORITHM,
        "params": self.get_params(),
        "arrays_sha256": hashlib.sha256(npz).hexdigest(),
        "trees": trees,
        "anchors_text": anchors_text,
        "attributes": {
            "n_runs_": self.n_runs_,
            "n_skipped_": self.n_skipped_,
            "skipped_reasons_": {str(k): int(v) for k, v in self.skipped_reasons_.items()},
            "n_anchor_configs_": self.n_anchor_configs_,
            "n_gpu_models_": self.n_gpu_models_,
            "n_training_pairs_": self.n_training_pairs_,
            "method_": self.method_,
            "fallback_reason_": self.fallback_reason_,
            "model_version_": self.model_version_,
            "feature_names_": list(self.feature_names_),
            "calibration_": self.calibration_,
            "workload_scale_": self.workload_scale_,
            "global_scale_": getattr(self, "global_scale_", None),
            "suspects_": list(getattr(self, "suspects_", [])),
            "direct_offset_": bool(getattr(self, "direct_offset_", False)),
        },
    }
    if physics is not None:
        manifest["physics"] = {
            "runs_text": physics_text,
            "calibration": physics.calibration_,
        }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest, sort_keys=True, allow_nan=True))
        zf.writestr("arrays.npz", npz)
    return out.getvalue()


def from_bytes(cls: type[Model], payload: bytes) -> Model:
    """Load what :meth:`to_bytes` wrote.  Anything else (a pickle, a damaged or altered file)
    raises :class:`ModelFormatError`; nothing in the payload is ever executed."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise ModelFormatError(f"model payload must be bytes, got {type(payload).__name__}")
    payload = bytes(payload)
    if not payload.startswith(b"PK\x03\x04"):
        kind = "a Python pickle" if payload[:1] == b"\x80" else "not a fedopt model file"
        raise ModelFormatError(f"refused model payload: {kind} (expected a {FORMAT_NAME} zip)")
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as zf:
            names = set(zf.namelist())
            if names != {"manifest.json", "arrays.npz"}:
                raise ModelFormatError(f"refused model payload: unexpected members {sorted(names)}")
            manifest = json.loads(zf.read("manifest.json").decode("utf-8"))
            npz = zf.read("arrays.npz")
    except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError, KeyError) as exc:
        raise ModelFormatError(f"refused model payload: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ModelFormatError("refused model payload: not a fedopt predictor manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelFormatError(f"unsupported model format version {manifest.get('format_version')!r}")
    if hashlib.sha256(npz).hexdigest() != manifest.get("arrays_sha256"):
        raise ModelFormatError("refused model payload: arrays do not match the manifest checksum (altered file)")
    try:
        with np.load(io.BytesIO(npz), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError) as exc:
        raise ModelFormatError(f"refused model payload: {exc}") from None
    if any(a.dtype == object for a in arrays.values()):
        raise ModelFormatError("refused model payload: object arrays")
    try:
        params = manifest["params"]
        self = cls(**{k: params[k] for k in cls().get_params() if k in params})
        attrs = manifest["attributes"]
        if not isinstance(attrs, dict):
            raise ModelFormatError("refused model payload: attributes are not a mapping")
        unexpected = sorted(set(attrs) - set(SAVED_ATTRIBUTES))
        if unexpected:
            raise ModelFormatError(f"refused model payload: unexpected attribute(s) {unexpected}")
        for k, v in attrs.items():
            setattr(self, k, v)
        trees = manifest["trees"]
        for name in ("transfer_", "scaling_", "direct_"):
            setattr(self, name, ArrayTrees.from_arrays(name, arrays, trees[name]) if name in trees else None)
        self.importance_sample_ = None
        if "importance_model" in trees:
            self.importance_sample_ = {
                "X": arrays["importance.X"],
                "y": arrays["importance.y"],
                "model": ArrayTrees.from_arrays("importance_model", arrays, trees["importance_model"]),
            }
        text = manifest["anchors_text"]
        table = pd.DataFrame({c: pd.Series(text[c], dtype=object) for c in ANCHOR_TEXT})
        for c in ANCHOR_NUM:
            table[c] = arrays[f"anchors.{c}"].astype(float)
        self.anchors_ = table
        self.physics_ = None
        if "physics" in manifest:
            saved = manifest["physics"]
            physics = PhysicsModel(confidence=self.confidence, random_state=int(self.random_state))
            physics.efficiency_ = Efficiency(
                {
                    g: ArrayTrees.from_arrays(f"physics_{g}_", arrays, trees[f"physics_{g}_"])
                    for g in MODE_GROUPS
                    if f"physics_{g}_" in trees
                },
                ArrayTrees.from_arrays("physics_shared_", arrays, trees["physics_shared_"]),
            )
            runs = pd.DataFrame({c: pd.Series(saved["runs_text"][c], dtype=object) for c in PHYSICS_TEXT})
            for c in PHYSICS_NUM:
                runs[c] = arrays[f"physics_runs.{c}"].astype(float)
            physics.runs_ = runs
            physics.n_runs_ = int(len(runs))
            if not isinstance(saved["calibration"], dict):
                raise ModelFormatError("refused model payload: physics calibration is not a mapping")
            physics.calibration_ = saved["calibration"]
            self.physics_ = physics
    except (KeyError, TypeError) as exc:
        raise ModelFormatError(f"refused model payload: missing {exc}") from None
    self._pool_cache = None
    self._importances = None
    return self
