"""The job a person describes, turned into task fields one way for every face.

The Predict page, ``fedopt predict``, the Plan page, ``fedopt plan`` and ``track()`` all build
their task with :func:`job_task`, so one job asked through any of them is the same task with
the same defaults, and so gets the same answer:

- blank text is "not given"; a model (``model``) is the workload;
- ``tokens`` is the work counted in tokens (giving ``work_units`` as well is refused);
- the task type, when not given, is what the mode implies (an inference mode: inference;
  full-ft, lora, qlora: fine-tuning), else training;
- batch size, precision and software are left out when not given: the predictor fills a
  missing batch with its stated rule (the workload's most measured batch per GPU), a missing
  precision and software with those of the workload's most measured runs (or only the software,
  where a precision is given), and the answer says so;
- a prediction with no amount of work is made for :data:`DEFAULT_WORK_UNITS`, and
  :attr:`~fedopt_core.schema.Task.assumed` says so (a run records only what was given).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedopt_core import schema
from fedopt_core.catalog import models
from fedopt_core.errors import ValidationError

#: The work a prediction is made for when the job says none (samples, images, tokens...).
DEFAULT_WORK_UNITS = 1_000_000.0
#: Training modes that start from a trained model.
FINE_TUNING_MODES = ("full-ft", "lora", "qlora")


def implied_task_type(mode: str | None) -> str:
    """The task type a (validated) mode implies: inference, fine-tuning, or training (also for none)."""
    if mode in schema.INFERENCE_MODES:
        return "inference"
    return "fine-tuning" if mode in FINE_TUNING_MODES else "training"


def job_task(
    values: Mapping[str, Any] | None = None,
    /,
    *,
    model: str | None = None,
    tokens: float | None = None,
    for_run: bool = False,
    **fields: Any,
) -> schema.Task:
    """The validated task for a job described by ``values`` and ``fields`` (task fields).

    ``model``: a catalogued model (``fedopt models list``) or, with ``model_params_b``, one of
    the user's own; it becomes the workload.  ``tokens``: the amount of work in tokens.
    ``for_run``: the task of a run that happened (``track()``): nothing is assumed for it.
    Raises :class:`~fedopt_core.errors.ValidationError` naming the field.
    """
    given = {**dict(values or {}), **fields}
    given = {k: v for k, v in given.items() if k in schema.TASK_FIELDS and not _blank(v)}
    if not _blank(model):
        if models.find_model(model) is None and given.get("model_params_b") is None:
            raise ValidationError(
                "model",
                f"{str(model).strip()!r} is not in the model catalogue (see fedopt models list); "
                "describe it by its size in billions of parameters",
            )
        given["workload"] = str(model).strip()
    if not _blank(tokens):
        if given.get("work_units") is not None:
            raise ValidationError("tokens", "give either tokens or work units, not both")
        given["work_units"], given["work_unit"] = tokens, "tokens"
    assumed: list[str] = []
    if not for_run and given.get("work_units") is None:
        given["work_units"] = DEFAULT_WORK_UNITS
        unit = given.get("work_unit") or "work units"
        assumed.append(f"no amount of work given: predicted for {DEFAULT_WORK_UNITS:,.0f} {unit}")
    task = schema.validate_task(given)
    if task.get("task_type") is None:  # after validation: the mode is in its canonical spelling
        task["task_type"] = implied_task_type(task.get("mode"))
    task.assumed = tuple(assumed)
    return task


def _blank(value: Any) -> bool:
    """Not given: missing as the schema reads it (None, NaN), or text of spaces only."""
    return schema._is_missing(value) or (isinstance(value, str) and not value.strip())
