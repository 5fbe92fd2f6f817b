"""The run schema: one validation path, clear errors naming the field, stable identities."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fedopt_core import schema


def test_only_gpu_type_count_and_time_are_required() -> None:
    clean = schema.validate_run({"gpu_type": "A100 SXM4 80GB", "gpu_count": 2, "execution_time_s": "12.5"})
    assert clean["execution_time_s"] == 12.5 and clean["gpu_count"] == 2 and clean["success"] is True
    assert set(schema.RUN_FIELDS) <= set(clean)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("execution_time_s", -3, "greater than zero"),
        ("execution_time_s", 0, "greater than zero"),
        ("execution_time_s", math.nan, "missing or NaN"),
        ("execution_time_s", math.inf, "finite"),
        ("execution_time_s", "fast", "not a number"),
        ("input_size_mb", -1, "negative"),
        ("work_units", 0, "greater than zero"),
        ("gpu_count", 1.5, "whole number"),
        ("gpu_count", 0, "at least 1"),
        ("success", "maybe", "true or false"),
    ],
)
def test_bad_values_are_refused_naming_the_field(field: str, value: object, words: str) -> None:
    run = {"gpu_type": "H100 SXM5", "gpu_count": 1, "execution_time_s": 10.0, field: value}
    with pytest.raises(schema.ValidationError) as info:
        schema.validate_run(run)
    assert info.value.field == field
    assert words in str(info.value)


def test_a_cpu_only_run_needs_no_gpu() -> None:
    clean = schema.validate_run({"gpu_type": "CPU", "gpu_count": 0, "execution_time_s": 4})
    assert clean["gpu_type"] == schema.CPU_ONLY and clean["gpu_count"] == 0


def test_validate_frame_keeps_good_rows_and_reports_bad_ones_with_lines() -> None:
    frame = pd.DataFrame(
        {
            "gpu_type": ["A10", "A10", None, "A10"],
            "gpu_count": [1, 1, 1, 1],
            "execution_time_s": [5, -1, 3, 7],
        }
    )
    good, errors = schema.validate_frame(frame, line_numbers=np.array([2, 3, 4, 5]))
    assert good["execution_time_s"].tolist() == [5.0, 7.0]
    assert [(e.line, e.field) for e in errors] == [(3, "execution_time_s"), (4, "gpu_type")]


def test_predictions_need_no_outcome() -> None:
    clean = schema.validate_run({"gpu_type": "A10", "gpu_count": 1}, require_outcome=False)
    assert clean["execution_time_s"] is None


def test_run_keys_are_stable_and_ignore_formatting() -> None:
    a = pd.DataFrame([{"gpu_type": "A10", "gpu_count": 1, "execution_time_s": 5, "workload": "bert"}])
    b = pd.DataFrame([{"gpu_type": "A10", "gpu_count": "1", "execution_time_s": "5.0", "workload": " bert "}])
    c = pd.DataFrame([{"gpu_type": "A10", "gpu_count": 1, "execution_time_s": 6, "workload": "bert"}])
    key_a = schema.run_keys(schema.normalise_frame(a))[0]
    assert key_a == schema.run_keys(schema.normalise_frame(b))[0]
    assert key_a != schema.run_keys(schema.normalise_frame(c))[0]
    assert schema.task_keys(schema.normalise_frame(a))[0] == schema.task_keys(schema.normalise_frame(c))[0]


# ---------------------------------------------------------------- what an LLM job is

_LLM_RUN = {
    "task_type": "fine-tuning",
    "workload": "llama-3.1-8b",
    "mode": "lora",
    "model_params_b": 8.03,
    "seq_len": 4096,
    "work_units": 2e8,
    "work_unit": "tokens",
    "gpu_type": "H100 SXM5 80GB",
    "gpu_count": 8,
    "execution_time_s": 5400.0,
}


def test_llm_job_fields_are_validated_and_words_people_write_are_understood() -> None:
    clean = schema.validate_run({**_LLM_RUN, "mode": "SFT", "work_unit": "Token"})
    assert clean["mode"] == "full-ft"
    assert clean["work_unit"] == "tokens"
    assert clean["seq_len"] == 4096.0
    assert clean["model_params_b"] == pytest.approx(8.03)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("mode", "dreaming", "must be one of pretrain"),
        ("work_unit", "bananas", "must be one of tokens"),
        ("seq_len", 4096.5, "whole number"),
        ("seq_len", -1, "greater than zero"),
        ("model_params_b", float("nan"), None),
        ("gpu_count", 1e20, "at most 100,000"),
        ("model_params_b", 1e9, "at most"),
        ("active_params_b", 9.0, "cannot exceed model_params_b"),
        ("concurrency", 0, "greater than zero"),
    ],
)
def test_absurd_llm_values_are_refused_naming_the_field(field: str, value: object, words: str | None) -> None:
    run = {**_LLM_RUN, field: value}
    if words is None:  # NaN is "not given", which is allowed for an optional field
        assert schema.validate_run(run)[field] is None
        return
    with pytest.raises(schema.ValidationError) as err:
        schema.validate_run(run)
    assert err.value.field == field
    assert words in err.value.message


def test_a_run_without_the_new_fields_keeps_the_key_it_had_before_they_existed() -> None:
    # Keys computed by the first release's schema (before mode, seq_len, ... were added): a run
    # stored then must keep its identity, or re-importing its file would duplicate it.
    run = {
        "task_type": "training",
        "workload": "resnet50",
        "precision": "fp16_amp",
        "batch_size": 256,
        "work_units": 1e6,
        "gpu_type": "A100 SXM4 40GB",
        "gpu_count": 8,
        "execution_time_s": 1350.0,
        "platform": "gpu_8x_a100",
    }
    frame, _ = schema.validate_frame(pd.DataFrame([run]))
    assert schema.run_keys(frame)[0] == "3e4b5544e0e418d00cc9b0b4059fc80e94c40aed"
    assert schema.task_keys(frame)[0] == "ef7fe1a2a4f822d0b8b8aebb3f85f2504320ee13"
    described, _ = schema.validate_frame(pd.DataFrame([{**run, "seq_len": 2048}]))
    assert schema.run_keys(described)[0] != schema.run_keys(frame)[0]
    assert schema.task_keys(described)[0] != schema.task_keys(frame)[0]


def test_every_number_of_a_run_has_an_upper_bound() -> None:
    assert set(schema.NUMERIC_FIELDS) <= set(schema.UPPER_LIMITS)


@pytest.mark.parametrize("field", sorted(schema.UPPER_LIMITS))
def test_a_number_past_its_bound_is_refused_naming_the_field(field: str) -> None:
    run = {"gpu_type": "A10", "gpu_count": 1, "execution_time_s": 5.0, field: schema.UPPER_LIMITS[field] * 10}
    with pytest.raises(schema.ValidationError) as err:
        schema.validate_run(run)
    assert err.value.field == field and "at most" in err.value.message
