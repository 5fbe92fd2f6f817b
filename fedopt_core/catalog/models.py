"""The model catalogue: open models people train and serve, with the numbers their configs publish.

``data/models.csv`` (sources in its header) holds, per model, total and active parameters,
layers, hidden size, attention and KV heads, vocabulary and context: what the work and memory
of a job follow from (:mod:`fedopt_core.prediction.work`).  A model is found by its id, its
name, an alias or a Hugging Face repository name, written as people write them
(``llama-3.1-8b``, ``Llama3.1-8B``, ``meta-llama/Llama-3.1-8B-Instruct``).  A model that is not
listed can be described by its numbers (:func:`describe_model`); what is not given is estimated
by a stated rule, and the result says so.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fedopt_core.config import DEFAULT_DATA_DIR
from fedopt_core.csvfiles import read_table
from fedopt_core.errors import CatalogueInputError

__all__ = [
    "MODEL_COLUMNS",
    "MODEL_FILE",
    "ModelSpec",
    "describe_model",
    "family_of",
    "find_model",
    "list_models",
    "model_key",
    "resolve_model",
]

MODEL_FILE = DEFAULT_DATA_DIR / "models.csv"
MODEL_COLUMNS = [
    "model_id",
    "name",
    "aliases",
    "family",
    "kind",
    "total_params_b",
    "active_params_b",
    "n_layers",
    "hidden_size",
    "n_heads",
    "n_kv_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "max_context",
    "n_experts",
    "experts_per_token",
    "source_url",
    "notes",
]
_NUMBERS = MODEL_COLUMNS[MODEL_COLUMNS.index("total_params_b") : MODEL_COLUMNS.index("experts_per_token") + 1]
#: Width over depth of the dense decoders in the catalogue (Llama 3 8B: 4096/32, 405B: 16384/126):
#: the rule that gives an undescribed model its layers and width from its size.
_WIDTH_PER_LAYER = 128
#: Head width of nearly every catalogued transformer.
_HEAD_DIM = 128
#: Suffixes that name a variant of the same weights, not another model.
_VARIANT_SUFFIXES = ("instruct", "chat", "hf", "it", "base", "fp8", "bf16", "fp16", "awq", "gptq", "v0.1", "v0.3")


@dataclass(frozen=True)
class ModelSpec:
    """One model's published numbers (or estimates, when ``estimated`` names them)."""

    model_id: str
    name: str
    family: str
    kind: str
    total_params_b: float
    active_params_b: float
    n_layers: int
    hidden_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab_size: int = 0
    max_context: int = 0
    intermediate_size: int = 0
    n_experts: int = 0
    experts_per_token: int = 0
    source_url: str = ""
    #: Fields estimated by a rule (not published for this model), e.g. ("n_layers", "hidden_size").
    estimated: tuple[str, ...] = ()

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 1

    @property
    def is_decoder(self) -> bool:
        """A generative model (KV cache, per-token decoding); encoders and CNNs are not."""
        return self.kind in ("decoder", "moe", "llm") and self.is_transformer

    @property
    def is_transformer(self) -> bool:
        """Layers and width are known, so the transformer rules for FLOPs and activations apply."""
        return self.n_layers > 0 and self.hidden_size > 0 and self.kind not in ("cnn", "diffusion")

    def kv_bytes_per_token(self, bytes_per_value: float = 2.0) -> float:
        """KV-cache bytes one token holds: keys and values of every layer's KV heads."""
        return 2.0 * self.n_layers * self.n_kv_heads * self.head_dim * bytes_per_value

    def as_dict(self) -> dict[str, object]:
        out = dataclasses.asdict(self)
        out["estimated"] = list(self.estimated)
        return out


def model_key(name: str) -> str:
    """The form two ways of writing one model share: ``Meta-Llama/Llama-3.1-8B-Instruct`` -> ``llama3.1-8b``.

    Lower case; the repository owner dropped; spaces and underscores become dashes; a dash
    between a letter and a digit goes (``llama-3`` = ``llama3``); variant suffixes go
    (instruct, chat, hf, fp8, ...).
    """
    text = str(name).strip().lower()
    text = text.rsplit("/", 1)[-1]
    text = re.sub(r"[\s_]+", "-", text)
    changed = True
    while changed:
        changed = False
        for suffix in _VARIANT_SUFFIXES:
            if text.endswith("-" + suffix):
                text = text[: -len(suffix) - 1]
                changed = True
    text = re.sub(r"(?<=[a-z])-(?=\d)", "", text)
    return text.strip("-")


@functools.lru_cache(maxsize=4)
def _table(path: str) -> pd.DataFrame:
    # Architecture columns may be blank (a CNN has no layers x width); size and id may not.
    raw, errors = read_table(Path(path), required=["model_id", "total_params_b"])
    if errors:
        raise CatalogueInputError("models.csv", "; ".join(str(e) for e in errors[:3]))
    missing = [c for c in MODEL_COLUMNS if c not in raw.columns]
    if missing:
        raise CatalogueInputError("models.csv", f"header lacks {', '.join(missing)}")
    table = raw[MODEL_COLUMNS].copy()
    for name in _NUMBERS:
        table[name] = pd.to_numeric(table[name].replace("", None), errors="coerce")
    table["active_params_b"] = table["active_params_b"].fillna(table["total_params_b"])
    table["head_dim"] = table["head_dim"].fillna(table["hidden_size"] / table["n_heads"].where(table["n_heads"] > 0))
    table["n_kv_heads"] = table["n_kv_heads"].fillna(table["n_heads"])
    return table.reset_index(drop=True)


def list_models(path: str | Path | None = None) -> pd.DataFrame:
    """The catalogue as a frame (one row per model, :data:`MODEL_COLUMNS`), in file order."""
    return _table(str(path or MODEL_FILE)).copy()


@functools.lru_cache(maxsize=4)
def _index(path: str) -> dict[str, int]:
    table = _table(path)
    index: dict[str, int] = {}
    for pos, row in table.iterrows():
        names = [row["model_id"], row["name"], *str(row["aliases"] or "").split(";")]
        for name in names:
            if str(name).strip():
                index.setdefault(model_key(name), int(pos))
    return index


def _spec(row: pd.Series) -> ModelSpec:
    def whole(name: str) -> int:
        value = row[name]
        return 0 if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value))

    return ModelSpec(
        model_id=str(row["model_id"]),
        name=str(row["name"] or row["model_id"]),
        family=str(row["family"] or ""),
        kind=str(row["kind"] or "decoder"),
        total_params_b=float(row["total_params_b"]),
        active_params_b=float(row["active_params_b"]),
        n_layers=whole("n_layers"),
        hidden_size=whole("hidden_size"),
        n_heads=max(whole("n_heads"), 1),
        n_kv_heads=max(whole("n_kv_heads"), 1),
        head_dim=max(whole("head_dim"), 1),
        vocab_size=whole("vocab_size"),
        max_context=whole("max_context"),
        intermediate_size=whole("intermediate_size"),
        n_experts=whole("n_experts"),
        experts_per_token=whole("experts_per_token"),
        source_url=str(row["source_url"] or ""),
    )


def find_model(name: str | None, path: str | Path | None = None) -> ModelSpec | None:
    """The catalogued model ``name`` means, or None (see :func:`model_key` for what matches)."""
    if name is None or not str(name).strip():
        return None
    where = str(path or MODEL_FILE)
    pos = _index(where).get(model_key(name))
    return None if pos is None else _spec(_table(where).iloc[pos])


def describe_model(
    params_b: float,
    *,
    active_params_b: float | None = None,
    n_layers: int | None = None,
    hidden_size: int | None = None,
    n_heads: int | None = None,
    n_kv_heads: int | None = None,
    vocab_size: int | None = None,
    name: str = "custom",
) -> ModelSpec:
    """A model nobody catalogued, from its size and whatever else is known of it.

    Not given, the architecture follows the catalogue's dense decoders: width ``128 x layers``
    with ``N ~ 12 L d^2``, heads of width 128 and as many KV heads as heads (no grouped-query
    attention: the KV cache is then an upper bound, so a fit is never overstated).  Estimated
    fields are listed in ``estimated``.
    """
    if not (isinstance(params_b, (int, float)) and math.isfinite(params_b) and params_b > 0):
        raise CatalogueInputError("model_params_b", f"{params_b!r} must be a positive number of billions")
    estimated: list[str] = []
    total = float(params_b) * 1e9
    if n_layers is None and hidden_size is None:
        n_layers = max(1, round((total / (12 * _WIDTH_PER_LAYER**2)) ** (1 / 3)))
        estimated.append("n_layers")
    if hidden_size is None:
        hidden_size = max(64, round(math.sqrt(total / (12 * float(n_layers))) / 64) * 64)
        estimated.append("hidden_size")
    if n_layers is None:
        n_layers = max(1, round(total / (12 * float(hidden_size) ** 2)))
        estimated.append("n_layers")
    if n_heads is None:
        n_heads = max(1, hidden_size // _HEAD_DIM)
        estimated.append("n_heads")
    if n_kv_heads is None:
        n_kv_heads = n_heads
        estimated.append("n_kv_heads")
    return ModelSpec(
        model_id=name,
        name=name,
        family="custom",
        kind="decoder",
        total_params_b=float(params_b),
        active_params_b=float(active_params_b or params_b),
        n_layers=int(n_layers),
        hidden_size=int(hidden_size),
        n_heads=int(n_heads),
        n_kv_heads=int(n_kv_heads),
        head_dim=max(1, int(hidden_size) // int(n_heads)),
        vocab_size=int(vocab_size or 0),
        estimated=tuple(estimated),
    )


def resolve_model(
    workload: str | None, params_b: float | None = None, active_params_b: float | None = None
) -> ModelSpec | None:
    """The model a job is about: the catalogue's entry for ``workload``, else one described by its size.

    A size given with a catalogued name wins over the catalogue's (the user knows their model);
    neither known gives None.
    """
    spec = find_model(workload)
    if spec is not None:
        if params_b is not None and abs(params_b - spec.total_params_b) > 0.05 * spec.total_params_b:
            return describe_model(params_b, active_params_b=active_params_b, name=str(workload))
        return spec
    if params_b is None:
        return None
    return describe_model(params_b, active_params_b=active_params_b, name=str(workload or "custom"))


def family_of(model: ModelSpec | None, workload: str | None = None) -> str | None:
    """The model family a job belongs to: the catalogue's, else the one its name starts with.

    ``gemma-3-27b-it`` (not catalogued) is family "gemma" like the catalogued Gemma 2 models, and
    ``gpt3-5b`` is "gpt3" like GPT-3 175B: a held-out family is held out with all its generations.
    """
    if model is not None and model.family and model.family != "custom":
        return model.family
    name = model_key(workload or (model.model_id if model else "") or "")
    first = name.split("-")[0]
    known = _families(str(MODEL_FILE))
    for candidate in (first, re.sub(r"[\d.]+$", "", first)):
        if candidate in known:
            return candidate
    match = re.match(r"[a-z]+", name)
    return match.group(0) if match else None


@functools.lru_cache(maxsize=4)
def _families(path: str) -> frozenset[str]:
    return frozenset(str(f) for f in _table(path)["family"] if str(f).strip())
