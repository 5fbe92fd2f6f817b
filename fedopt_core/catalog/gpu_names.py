"""GPU names as people and catalogues write them, reduced to comparable signatures.

Pure text logic, no files and no database: :class:`NameIndex` is built from a GPU catalogue frame
(see :mod:`fedopt_core.catalog.gpus`, which owns the catalogue and the cached index) and resolves a
raw name ("NVIDIA A100-SXM4-80GB", "gpu_8x_h100_sxm5", "RTX6000 Ada") to a canonical one, saying
how it matched (exact, alias, fuzzy, unknown).
"""

from __future__ import annotations

import difflib
import math
import re
from typing import NamedTuple

import pandas as pd

__all__ = ["NameIndex", "basic_name", "canonical_key", "partition_of"]

# Fuzzy matches below this difflib ratio are not trusted (0.85 keeps "a100 sxm" ~ "a100 sxm4" but
# rejects unrelated names; different model numbers are excluded separately).
_FUZZY_CUTOFF = 0.85
# A slice of a GPU is not the GPU: MIG profiles ("1g.10gb", "3g.40gb", "MIG") and NVIDIA vGPU
# profiles ("H100-80C", "A40-24Q", "A16-4A": memory in GB then the profile letter), "GRID ...".
_MIG = re.compile(r"(?<![a-z0-9])(\d+g\.\d+gb|mig)(?![a-z0-9])", re.IGNORECASE)
_VGPU = re.compile(r"(?<![a-z0-9])(?:[a-z]+\d+[a-z]*)-\d+[abcq](?![a-z0-9])|(?<![a-z0-9])(grid|vgpu|vws)(?![a-z0-9])",
                   re.IGNORECASE)  # fmt: skip
# Two memory sizes name the same variant within this relative tolerance (94 vs 96 GB do not).
_MEMORY_TOLERANCE = 0.015

_VENDOR_WORDS = {"nvidia", "tesla", "geforce", "quadro", "amd", "radeon", "instinct"}
# Words that say nothing about which GPU it is (marketplace labels, nvidia-smi suffixes, memory types).
_NOISE_WORDS = {
    "gpu",
    "gpus",
    "graphics",
    "card",
    "with",
    "design",
    "generation",
    "tensor",
    "core",
    "community",
    "secure",
    "cloud",
    "marketplace",
    "median",
    "spot",
    "ondemand",
    "on",
    "demand",
    "intel",
    "hbm",
    "hbm2",
    "hbm2e",
    "hbm3",
    "hbm3e",
    "gddr6",
    "gddr6x",
    "gddr5",
    "gddr5x",
    "the",
    "nvlink",
    "gen3",
    "gen4",
    "gen5",
}
_FORM_WORDS = {
    "sxm": "sxm",
    "sxm2": "sxm",
    "sxm3": "sxm",
    "sxm4": "sxm",
    "sxm5": "sxm",
    "sxm6": "sxm",
    "hgx": "sxm",
    "dgx": "sxm",
    "pcie": "pcie",
    "nvl": "nvl",
}
_SERIES_WORDS = {"rtx", "gtx"}
# Words that make a different GPU of the same number: a contained-model match may not ignore them.
_MODEL_MODIFIERS = {
    "ti",
    "super",
    "max",
    "q",
    "mobile",
    "laptop",
    "ada",
    "blackwell",
    "pro",
    "d",
    "g",
    "s",
    "x",
    "xt",
    "cnx",
    "le",
    "se",
    "m",
    "h",
    "nvl",
    "lhr",
    "embedded",
    "dgxs",
    "fhhl",
    "v",
    "titan",
    "a",
    "l",
}  # "A6000" and "RTX A6000" are the same card
_MEMORY_TOKEN = re.compile(r"^(\d+(?:\.\d+)?)(gb|gib|g)$")


def _basic(raw: str) -> str:
    """Lowercase, separators to single spaces; nothing removed."""
    text = str(raw).lower().strip()
    # keep decimal points of numbers ("141.0gb") but not of instance types ("p3.8xlarge")
    text = re.sub(r"(?<![a-z0-9.])(\d+)\.(?=\d)", "\\1\0", text)
    text = re.sub(r"[^a-z0-9\0]+", " ", text).replace("\0", ".")
    text = re.sub(r"(?<=\d)(ti|super)\b", r" \1", text)  # "2080ti" -> "2080 ti"
    text = re.sub(r"\b(rtx|gtx)(?=\d)", r"\1 ", text)  # "rtx6000" -> "rtx 6000"
    text = re.sub(r"(\d(?:\.\d+)?)\s+(gb|gib|g)\b", r"\1\2", text)  # "80 gb" -> "80gb"
    text = re.sub(r"\bpci\s+e\b|\bpci\s+express\b", "pcie", text)
    text = re.sub(r"\bmax\s*q\b", "max q", text)
    return re.sub(r"\s+", " ", text).strip()


def _core(basic: str) -> str:
    """Drop vendor words, instance-type counts and marketplace noise from a _basic() string."""
    text = re.sub(r"\b\d+\s*gpus?\s+\d+\s*vcpus?\s+\d+(?:gb|g|gib)\b", " ", basic)  # nebius "8gpu-128vcpu-1600gb"
    text = re.sub(r"\b(\d+)x(?=[a-z])", r"\1x ", text)  # "4xv100" -> "4x v100"
    text = re.sub(r"\b\d+\s*x\b|\bx\s*\d+\b", " ", text)  # "gpu_8x_", "8 x", "x8"
    tokens = [t for t in text.split() if t not in _VENDOR_WORDS and t not in _NOISE_WORDS]
    return " ".join(tokens)


class _Signature(NamedTuple):
    model: str  # the model words, e.g. "a100", "6000 ada", "3080 max q"
    memory_gb: float | None
    form: str | None  # "sxm" | "pcie" | "nvl" | None


def _signature(core: str) -> _Signature:
    memories: list[float] = []
    forms: set[str] = set()
    model: list[str] = []
    for token in core.split():
        mem = _MEMORY_TOKEN.match(token)
        if mem:
            memories.append(float(mem.group(1)))
        elif token in _FORM_WORDS:
            forms.add(_FORM_WORDS[token])
        elif token not in _SERIES_WORDS:
            model.append(token)
    # Contradictory words ("sxm4 ... pcie", two sizes) say nothing: "conflict" matches no variant.
    memory = memories[0] if len(set(memories)) == 1 else (math.nan if memories else None)
    form = forms.pop() if len(forms) == 1 else ("conflict" if forms else None)
    return _Signature(" ".join(model), memory, form)


def _canonical_key(name: str) -> str:
    return _core(_basic(name))


def _modifiers(model: str) -> frozenset[str]:
    return frozenset(t for t in model.split() if t in _MODEL_MODIFIERS)


def _model_codes(model: str) -> frozenset[str]:
    """The words of a model that contain digits ("a4000", "3080", "h100"): a fuzzy match must keep them all."""
    return frozenset(t for t in model.split() if any(c.isdigit() for c in t))


class _Entry(NamedTuple):
    gpu_name: str
    signature: _Signature
    form: str  # "sxm" | "pcie" | "nvl" | "other"
    rank: int
    memory_gb: float | None


def partition_of(raw: str) -> str | None:
    """The kind of slice ("MIG slice" or "vGPU profile") when ``raw`` names a fraction of a GPU, else None.

    Such a name must never resolve to the whole GPU (a 1g.10gb slice has a seventh of an A100's
    compute): resolution reports it as a ``partition``.
    """
    if not isinstance(raw, str):
        return None
    if _MIG.search(raw):
        return "MIG slice"
    if _VGPU.search(raw):
        return "vGPU profile"
    return None


class NameIndex:
    """Everything name resolution needs, built once from a GPU catalogue frame."""

    def __init__(self, catalog: pd.DataFrame) -> None:
        self.exact: dict[str, str] = {}
        self.alias: dict[str, str] = {}
        self.prefix: list[tuple[str, str]] = []
        self.by_model: dict[str, list[_Entry]] = {}
        for rec in catalog.to_dict("records"):
            name = rec["gpu_name"]
            key = _canonical_key(name)
            self.exact[key] = name
            sig = _signature(key)
            given = rec["memory_gb"]
            memory = given if isinstance(given, float) and math.isfinite(given) else sig.memory_gb
            form = sig.form or {"SXM": "sxm", "PCIe": "pcie"}.get(rec["form_factor"], "other")
            entry = _Entry(name, sig, form, int(rec["variant_rank"]), memory)
            self.by_model.setdefault(sig.model, []).append(entry)
            for alias in rec["aliases"]:
                if alias.endswith("*"):
                    self.prefix.append((_basic(alias[:-1]), name))
                else:
                    self.alias[_basic(alias)] = name
        self.vocabulary = {w for model in self.by_model for w in model.split()}
        self.long_words = sorted(w for w in self.vocabulary | _MODEL_MODIFIERS if len(w) >= 4 and w.isalpha())
        # Longest prefix first, so "p4de" wins over "p4d" style overlaps.
        self.prefix.sort(key=lambda p: -len(p[0]))
        self.fuzzy_keys = {**self.alias, **self.exact}
        self.fuzzy_kinds = {
            key: (_model_codes(_signature(key).model), _modifiers(_signature(key).model)) for key in self.fuzzy_keys
        }

    def resolve(self, raw: str) -> tuple[str | None, str]:
        if partition_of(raw) is not None:
            return None, "partition"
        basic = _basic(raw)
        if not basic:
            return None, "unknown"
        core = _core(basic)
        if core in self.exact:
            return self.exact[core], "exact"
        for key in (basic, core):
            if key in self.alias:
                return self.alias[key], "alias"
        for prefix, name in self.prefix:
            if basic == prefix or basic.startswith(prefix + " "):
                return name, "alias"
        if not core:
            return None, "unknown"
        sig = _signature(core)
        found = self._by_tokens(sig)
        if found is not None:
            return found
        corrected = self._correct_words(sig.model)
        if corrected != sig.model:
            found = self._by_tokens(sig._replace(model=corrected))
            if found is not None:
                return found[0], "fuzzy"
        found = self._by_contained_model(sig._replace(model=corrected))
        if found is not None:
            return found
        return self._fuzzy(core, sig)

    def _correct_words(self, model: str) -> str:
        """Replace misspelt words ("supper" -> "super") by the catalogue word they are close to.

        Only words of four or more letters without digits that the catalogue does not know are
        touched: model numbers are never "corrected".
        """
        words = []
        for word in model.split():
            if len(word) >= 4 and word.isalpha() and word not in self.vocabulary:
                close = difflib.get_close_matches(word, self.long_words, n=1, cutoff=0.8)
                word = close[0] if close else word
            words.append(word)
        return " ".join(words)

    def _by_tokens(self, sig: _Signature) -> tuple[str, str] | None:
        candidates = self.by_model.get(sig.model)
        if not candidates:
            return None
        consistent = True
        if sig.form is not None:
            same_form = [e for e in candidates if e.form == sig.form]
            if same_form:
                candidates = same_form
            else:
                consistent = False
        if sig.memory_gb is not None:
            same_memory = [
                e
                for e in candidates
                if e.memory_gb is not None and abs(e.memory_gb - sig.memory_gb) <= _MEMORY_TOLERANCE * e.memory_gb
            ]
            if same_memory:
                candidates = same_memory
            else:
                consistent = False
        best = min(candidates, key=lambda e: e.rank)
        return best.gpu_name, "alias" if consistent else "fuzzy"

    def _by_contained_model(self, sig: _Signature) -> tuple[str, str] | None:
        """A known model whose words all appear in the query, the rest being droppable noise.

        Catches system names such as "Dell 8x H100 80GB SXM5" or "Lambda Cloud - RTX A6000".
        Words that change the model ("ti", "super", "mobile", ...) or bare numbers are never dropped,
        so "RTX 3080 Ti" does not become "RTX 3080".  Two equally long known models: ambiguous.
        """
        words = set(sig.model.split())
        best: list[str] = []
        best_size = 0
        for model in self.by_model:
            model_words = set(model.split())
            if not model_words or not model_words <= words:
                continue
            dropped = words - model_words
            if any(w in _MODEL_MODIFIERS or w.isdigit() for w in dropped):
                continue
            if len(model_words) > best_size:
                best, best_size = [model], len(model_words)
            elif len(model_words) == best_size:
                best.append(model)
        if len(best) != 1:
            return None
        found = self._by_tokens(sig._replace(model=best[0]))
        return (found[0], "fuzzy") if found else None

    def _fuzzy(self, core: str, sig: _Signature) -> tuple[str | None, str]:
        # Model codes must agree exactly: "rtx 3060" is not a typo of "rtx 3070", nor "4000" of "a4000".
        wanted = (_model_codes(sig.model), _modifiers(sig.model))
        pool = [key for key, kind in self.fuzzy_kinds.items() if kind == wanted]
        match = difflib.get_close_matches(core, pool, n=1, cutoff=_FUZZY_CUTOFF)
        if not match:
            return None, "unknown"
        return self.fuzzy_keys[match[0]], "fuzzy"


def basic_name(raw: str) -> str:
    """Lowercase, separators to single spaces; nothing removed (the form aliases are compared in)."""
    return _basic(raw)


def canonical_key(name: str) -> str:
    """The comparable key of a canonical name: vendor words, counts and noise dropped."""
    return _canonical_key(name)
