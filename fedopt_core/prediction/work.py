"""Work and memory of a transformer job from first principles: FLOPs, bytes, and what fits where.

What a job costs in arithmetic and in memory follows from the model's numbers (the catalogue's
:class:`~fedopt_core.catalog.models.ModelSpec`) and how it is run.  Every rule is written once
here, each with the reference it follows; tests check them against hand-computed cases.

FLOPs per token (N = parameters active per token, L layers, d = attention width, s = sequence):

* training (pre-training, full fine-tuning, one training step): ``6 N + 12 L d s`` (PaLM's
  convention, the one MFU figures use: forward 2N, backward 4N, plus the attention matmuls);
* LoRA / QLoRA: ``4 N + 8 L d s`` (the frozen weights get no gradients: forward plus the
  backward through the activations);
* one forward pass (NeuSight's single-batch inference): ``2 N + 4 L d s``;
* generation (offline, server, interactive, serving): per generated token ``2 N + 4 L d c``
  at the average context ``c``, plus the prompt's prefill ``(p / o) (2 N + 2 L d p)``; and the
  bytes a decode step reads: the weights once per step for the whole batch, plus each
  sequence's KV cache.

Memory per GPU (bytes; N_total = all parameters, experts included):

* training states: 16 B/param with Adam in mixed precision (2 weights + 2 gradients + 12
  optimizer: fp32 master, first and second moments; fp32 training is 4 + 4 + 8, the same 16);
  LoRA keeps frozen weights (2 B/param, QLoRA 0.56: 4-bit plus quantisation constants) and
  trains adapters of ~0.5% of the parameters at 16 B each;
* activations (FlashAttention, so no ``s^2`` scores): ``34 s b d`` bytes per layer kept for the
  backward pass, or ``2 s b d`` per layer with activation checkpointing plus one layer's working
  set; the logits ``4 s b V``;
* inference: weights at the precision's bytes per parameter, the KV cache
  ``2 L n_kv head_dim x bytes x context x concurrency`` (one sequence unless the job says how
  many it serves at once);
* layouts: data parallel (every GPU holds everything), fully sharded (FSDP / ZeRO-3: states split
  over the GPUs), tensor parallel (weights, states and activations split over up to 8 GPUs of a
  node, states further sharded across nodes).  A job fits if its states and activations fit in
  :data:`USABLE_FRACTION` of each GPU's memory in some layout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fedopt_core.catalog import gpus
from fedopt_core.catalog.models import ModelSpec, resolve_model
from fedopt_core.schema import CPU_ONLY, INFERENCE_MODES, TRAINING_MODES

__all__ = [
    "DEFAULT_SEQ_LEN",
    "FIT_COLUMNS",
    "GENERATION_MODES",
    "USABLE_FRACTION",
    "Fit",
    "Job",
    "Memory",
    "decode_bytes_per_token",
    "describe_job",
    "fit",
    "flops_per_token",
    "memory_fit",
    "memory_per_gpu",
    "smallest_fitting_count",
    "weight_bytes_per_param",
]

#: Context when the job does not say (the default of most serving engines and fine-tuning recipes).
DEFAULT_SEQ_LEN = 4096
#: Share of a GPU's memory a job may use: the rest goes to the CUDA context, the allocator's
#: fragmentation and the framework (vLLM's default ``gpu_memory_utilization`` is the same 0.9).
USABLE_FRACTION = 0.9
#: Inference modes that generate tokens one at a time (decode), as opposed to one forward pass.
GENERATION_MODES = tuple(m for m in INFERENCE_MODES if m != "forward")
#: Tensor parallelism stays inside a node: at most this many GPUs share a layer.
MAX_TENSOR_PARALLEL = 8
#: Sequences decoded together when the job does not say: MLPerf's offline scenario batches as
#: much as fits, a server keeps a moderate batch, an interactive session one.  A stated rule.
DEFAULT_CONCURRENCY = {"offline": 256, "server": 64, "serving": 64, "interactive": 1}
#: Generated tokens per request when the job does not say.
DEFAULT_OUTPUT_TOKENS = 256
#: Trainable share of the parameters in LoRA (rank 16 on every linear layer of a 7-70B model).
LORA_TRAINABLE_FRACTION = 0.005
_TRAINING_STATE_BYTES = 16.0
_QLORA_WEIGHT_BYTES = 0.56
_GB = 1e9

# Bytes per stored weight for a precision label (words as in the run schema's precision).
_WEIGHT_BYTES = [
    ("fp4", 0.5),
    ("int4", 0.5),
    ("fp8", 1.0),
    ("int8", 1.0),
    ("fp32", 4.0),
    ("float32", 4.0),
    ("tf32", 4.0),
    ("bf16", 2.0),
    ("fp16", 2.0),
]


def weight_bytes_per_param(precision: str | None) -> float:
    """Bytes a served weight takes at ``precision`` (bf16 when the precision is not given)."""
    text = (precision or "").lower()
    for word, size in _WEIGHT_BYTES:
        if word in text:
            return size
    return 2.0


def _attention_width(model: ModelSpec) -> float:
    return float(model.n_heads * model.head_dim)


def flops_per_token(
    model: ModelSpec,
    mode: str,
    seq_len: int,
    *,
    prompt_tokens: float | None = None,
    output_tokens: float | None = None,
) -> float:
    """FLOPs per token of work (per *generated* token for generation modes); see the module doc."""
    n = model.active_params_b * 1e9
    attention = model.n_layers * _attention_width(model)
    if mode in ("lora", "qlora"):
        return 4.0 * n + 8.0 * attention * seq_len
    if mode in TRAINING_MODES:
        return 6.0 * n + 12.0 * attention * seq_len
    if mode == "forward":
        return 2.0 * n + 4.0 * attention * seq_len
    prompt, output = _request_shape(seq_len, prompt_tokens, output_tokens)
    decode = 2.0 * n + 4.0 * attention * (prompt + output / 2.0)
    prefill = (prompt / output) * (2.0 * n + 2.0 * attention * prompt)
    return decode + prefill


def _request_shape(seq_len: int, prompt_tokens: float | None, output_tokens: float | None) -> tuple[float, float]:
    """Prompt and generated tokens of one request: as given, else the context split around the default output."""
    output = float(output_tokens) if output_tokens else float(min(DEFAULT_OUTPUT_TOKENS, max(seq_len // 2, 1)))
    prompt = float(prompt_tokens) if prompt_tokens is not None else max(float(seq_len) - output, 0.0)
    return prompt, output


def decode_bytes_per_token(
    model: ModelSpec,
    precision: str | None,
    *,
    context: float,
    concurrency: float,
) -> float:
    """Bytes read from GPU memory per generated token: the weights once per step, shared by the
    batch of ``concurrency`` sequences, plus the token's own KV cache at ``context``."""
    weights = model.total_params_b * 1e9 * weight_bytes_per_param(precision)
    if model.is_moe:  # a step reads only the experts its tokens route to (at most all of them)
        weights = min(weights, model.active_params_b * 1e9 * weight_bytes_per_param(precision) * concurrency)
    kv = model.kv_bytes_per_token(_kv_bytes(precision)) * context
    return weights / max(concurrency, 1.0) + kv


def _kv_bytes(precision: str | None) -> float:
    return 1.0 if weight_bytes_per_param(precision) <= 1.0 else 2.0


@dataclass(frozen=True)
class Memory:
    """Memory one GPU needs for a job in one layout, by part (bytes)."""

    layout: str
    gpu_count: int
    parts: dict[str, float] = field(default_factory=dict)

    @property
    def total_bytes(self) -> float:
        return float(sum(self.parts.values()))

    @property
    def total_gb(self) -> float:
        return self.total_bytes / _GB

    def describe(self) -> str:
        shown = ", ".join(f"{name} {value / _GB:.1f}" for name, value in self.parts.items() if value >= 0.05 * _GB)
        return f"{self.total_gb:.1f} GB per GPU ({self.layout}: {shown})"


def _layouts(mode: str, gpu_count: int) -> list[str]:
    if gpu_count <= 1:
        return ["single"]
    if mode in TRAINING_MODES or mode in ("lora", "qlora"):
        return ["data parallel", "fully sharded", "tensor parallel"]
    return ["replicas", "tensor parallel"]


def memory_per_gpu(
    model: ModelSpec,
    mode: str,
    precision: str | None,
    gpu_count: int,
    layout: str,
    *,
    seq_len: int = DEFAULT_SEQ_LEN,
    micro_batch: int = 1,
    checkpointing: bool = True,
    concurrency: float | None = None,
    prompt_tokens: float | None = None,
    output_tokens: float | None = None,
) -> Memory:
    """Bytes per GPU for ``model`` run in ``mode`` on ``gpu_count`` GPUs in ``layout`` (see module doc)."""
    count = max(int(gpu_count), 1)
    total = model.total_params_b * 1e9
    d = float(model.hidden_size)
    s = float(seq_len)
    if layout == "tensor parallel":
        tp = min(count, MAX_TENSOR_PARALLEL)
        state_split, act_split = count, tp
    elif layout == "fully sharded":
        state_split, act_split = count, 1
    else:  # single, data parallel, replicas: every GPU holds everything
        state_split, act_split = 1, 1
    parts: dict[str, float] = {}
    if mode in TRAINING_MODES or mode in ("lora", "qlora"):
        if mode in ("lora", "qlora"):
            per_param = _QLORA_WEIGHT_BYTES if mode == "qlora" else 2.0
            parts["weights"] = total * per_param / state_split
            parts["adapters"] = total * LORA_TRAINABLE_FRACTION * _TRAINING_STATE_BYTES / state_split
        else:
            weight = 4.0 if weight_bytes_per_param(precision) == 4.0 else 2.0
            parts["weights"] = total * weight / state_split
            parts["gradients"] = total * weight / state_split
            parts["optimizer"] = total * (_TRAINING_STATE_BYTES - 2 * weight) / state_split
        sbd = s * micro_batch * d
        if model.is_transformer:
            # checkpointing keeps each layer's input and recomputes one layer at a time
            kept_per_layer = 2.0 if checkpointing else 34.0
            activations = model.n_layers * kept_per_layer * sbd + (34.0 * sbd if checkpointing else 0.0)
            parts["activations"] = activations / act_split
            parts["logits"] = 4.0 * s * micro_batch * model.vocab_size / act_split
    else:
        parts["weights"] = total * weight_bytes_per_param(precision) / state_split_for_inference(layout, count)
        if model.is_decoder:
            # One sequence at a time unless the job says more: an engine batches only what fits,
            # so a job fits if it can run at all (its speed then depends on how many fit).
            users = float(concurrency or 1.0)
            if mode == "forward":
                context = s
            else:
                prompt, output = _request_shape(seq_len, prompt_tokens, output_tokens)
                context = prompt + output
            kv = model.kv_bytes_per_token(_kv_bytes(precision)) * context * users
            parts["kv_cache"] = kv / state_split_for_inference(layout, count)
    return Memory(layout=layout, gpu_count=count, parts=parts)


def state_split_for_inference(layout: str, count: int) -> int:
    """GPUs one copy of the weights is split over: all of them in tensor (and pipeline) parallel, one as replicas."""
    return count if layout == "tensor parallel" else 1


@dataclass(frozen=True)
class Fit:
    """Whether a job fits a GPU model at a count, in the simplest layout that does."""

    fits: bool
    memory: Memory
    capacity_gb: float

    @property
    def memory_per_gpu_gb(self) -> float:
        return self.memory.total_gb

    @property
    def reason(self) -> str:
        if self.fits:
            return f"fits: {self.memory.describe()}"
        return (
            f"needs {math.ceil(self.memory.total_gb)} GB per GPU, has {self.capacity_gb:g} "
            f"(at best {self.memory.layout} over {self.memory.gpu_count})"
        )


def fit(
    model: ModelSpec,
    mode: str,
    precision: str | None,
    gpu_count: int,
    capacity_gb: float,
    **shape: float | int | bool | None,
) -> Fit:
    """The simplest layout in which the job fits ``gpu_count`` GPUs of ``capacity_gb`` each.

    Layouts are tried simplest first (data parallel, then fully sharded, then tensor parallel);
    if none fits, the one needing the least memory is returned with ``fits=False``.
    """
    usable = capacity_gb * USABLE_FRACTION * _GB
    tried = [memory_per_gpu(model, mode, precision, gpu_count, layout, **shape) for layout in _layouts(mode, gpu_count)]
    for memory in tried:
        if memory.total_bytes <= usable:
            return Fit(True, memory, capacity_gb)
    return Fit(False, min(tried, key=lambda m: m.total_bytes), capacity_gb)


def smallest_fitting_count(
    model: ModelSpec,
    mode: str,
    precision: str | None,
    capacity_gb: float,
    *,
    max_gpus: int = 4096,
    **shape: float | int | bool | None,
) -> int | None:
    """The fewest GPUs (1, 2, 4, 8, then whole nodes of 8) of ``capacity_gb`` the job fits on, or None."""
    count = 1
    while count <= max_gpus:
        if fit(model, mode, precision, count, capacity_gb, **shape).fits:
            return count
        count = count * 2 if count < 8 else count + 8
    return None


# ---------------------------------------------------------------- a job, as a task describes it

#: Mode of a task that names none: its task type says whether it trains or serves.
_MODE_OF_TASK_TYPE = {"training": "pretrain", "fine-tuning": "full-ft", "inference": "offline"}


@dataclass(frozen=True)
class Job:
    """What a task's fields say the job is: the model, how it runs, and its shape."""

    model: ModelSpec
    mode: str
    precision: str | None
    seq_len: int
    concurrency: float | None = None
    prompt_tokens: float | None = None
    output_tokens: float | None = None

    def shape(self) -> dict[str, float | int | None]:
        """Keyword arguments of :func:`memory_per_gpu` / :func:`fit` for this job."""
        return {
            "seq_len": self.seq_len,
            "concurrency": self.concurrency,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
        }


def describe_job(task: Mapping[str, Any]) -> Job | None:
    """The job a task describes, or None when nothing says which model it runs.

    The model is the catalogue's entry for ``workload`` or one described by ``model_params_b``
    (:func:`~fedopt_core.catalog.models.resolve_model`); the mode is ``mode``, else what the task
    type implies (training: pretrain, fine-tuning: full-ft, inference: offline); the sequence is
    ``seq_len``, else :data:`DEFAULT_SEQ_LEN` or the model's context if shorter.
    """
    model = resolve_model(_text(task.get("workload")), _number(task.get("model_params_b")),
                          _number(task.get("active_params_b")))  # fmt: skip
    if model is None:
        return None
    mode = _text(task.get("mode")) or _MODE_OF_TASK_TYPE.get((_text(task.get("task_type")) or "").lower(), "pretrain")
    seq = _number(task.get("seq_len"))
    if seq is None:
        seq = min(DEFAULT_SEQ_LEN, model.max_context) if model.max_context else DEFAULT_SEQ_LEN
    return Job(
        model=model,
        mode=mode,
        precision=_text(task.get("precision")),
        seq_len=int(seq),
        concurrency=_number(task.get("concurrency")),
        prompt_tokens=_number(task.get("prompt_tokens")),
        output_tokens=_number(task.get("output_tokens")),
    )


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


#: Columns :func:`memory_fit` returns.
FIT_COLUMNS = ["fits_memory", "memory_per_gpu_gb", "gpu_memory_gb_available", "memory_layout", "memory_note"]


def memory_fit(task: Mapping[str, Any], platforms: pd.DataFrame) -> pd.DataFrame:
    """Does the task's job fit each platform's GPUs?  One row per platform, :data:`FIT_COLUMNS`.

    ``fits_memory`` is True or False where the job is described (a catalogued transformer or a
    size) and the GPU's memory is known (the platform's ``gpu_memory_gb``, else the GPU catalogue's);
    None where either is unknown (nothing is claimed).  ``memory_note`` says why a job does not
    fit ("needs 143 GB per GPU, has 80 ...") or how it fits.
    """
    n = len(platforms)
    out = pd.DataFrame(
        {
            "fits_memory": pd.Series([None] * n, dtype=object),
            "memory_per_gpu_gb": np.full(n, np.nan),
            "gpu_memory_gb_available": np.full(n, np.nan),
            "memory_layout": pd.Series([None] * n, dtype=object),
            "memory_note": pd.Series([None] * n, dtype=object),
        }
    )
    job = describe_job(task)
    # A CNN's or a diffusion model's memory is mostly activations these rules do not model: no claim.
    if job is None or n == 0 or not job.model.is_transformer:
        return out
    base = platforms.reset_index(drop=True)
    names = base.get("gpu_type", pd.Series([None] * n)).astype(object)
    capacity = pd.to_numeric(base.get("gpu_memory_gb", pd.Series(np.nan, index=base.index)), errors="coerce")
    known = names.notna() & (names.astype(str).str.lower() != CPU_ONLY)
    if known.any():
        specs = gpus.gpu_specs([str(x) for x in names[known]])
        from_catalogue = pd.Series(specs["memory_gb"].to_numpy(float), index=names[known].index)
        capacity = capacity.where(capacity.notna() & (capacity > 0), from_catalogue)
    capacity = capacity.where(known)
    count = pd.to_numeric(base.get("gpu_count", pd.Series(np.nan, index=base.index)), errors="coerce")
    cache: dict[tuple[float, int], Fit] = {}
    for pos in np.flatnonzero((capacity.notna() & count.notna() & (count >= 1)).to_numpy(bool)):
        key = (float(capacity.iloc[pos]), int(count.iloc[pos]))
        if key not in cache:
            cache[key] = fit(job.model, job.mode, job.precision, key[1], key[0], **job.shape())
        result = cache[key]
        out.at[pos, "fits_memory"] = bool(result.fits)
        out.at[pos, "memory_per_gpu_gb"] = result.memory_per_gpu_gb
        out.at[pos, "gpu_memory_gb_available"] = key[0]
        out.at[pos, "memory_layout"] = result.memory.layout
        out.at[pos, "memory_note"] = result.reason
    return out
