"""One builder for the job a person describes (runs.jobs.job_task), the same on every face."""

from __future__ import annotations

import pytest

from fedopt_core.errors import ValidationError
from fedopt_core.runs.jobs import DEFAULT_WORK_UNITS, implied_task_type, job_task


def test_a_job_left_mostly_blank_gets_the_stated_defaults_and_says_what_it_assumed() -> None:
    task = job_task(workload=" resnet50 ", precision="", batch_size=None, software="  ")
    assert task == {"task_type": "training", "workload": "resnet50", "work_units": DEFAULT_WORK_UNITS}
    assert task.assumed == ("no amount of work given: predicted for 1,000,000 work units",)
    # batch, precision and software stay missing: the predictor's stated rules fill them, not the face
    assert "batch_size" not in task and "precision" not in task and "software" not in task


def test_a_model_is_the_workload_tokens_are_the_work_and_the_mode_gives_the_task_type() -> None:
    task = job_task(model="llama-3.1-8b", mode="LoRA", tokens=2e8)
    assert task["workload"] == "llama-3.1-8b" and task["mode"] == "lora"
    assert task["work_units"] == 2e8 and task["work_unit"] == "tokens"
    assert task["task_type"] == "fine-tuning" and task.assumed == ()
    assert job_task(model="llama-3.1-8b", mode="serve", tokens=1e6)["task_type"] == "inference"
    assert job_task(mode="pretrain")["task_type"] == "training"
    # a task type the user gave wins over the mode's
    assert job_task(task_type="batch", mode="offline")["task_type"] == "batch"
    assert [implied_task_type(m) for m in (None, "offline", "qlora", "train-step")] == [
        "training",
        "inference",
        "fine-tuning",
        "training",
    ]


def test_refusals_name_the_field() -> None:
    with pytest.raises(ValidationError) as unknown:
        job_task(model="no-such-model-9b")
    assert unknown.value.field == "model" and "fedopt models list" in unknown.value.message
    # the user's own model is accepted once its size is given
    assert job_task(model="my-model", model_params_b=3.0)["workload"] == "my-model"
    with pytest.raises(ValidationError) as both:
        job_task(tokens=1e6, work_units=5.0)
    assert both.value.field == "tokens"
    with pytest.raises(ValidationError) as negative:
        job_task(workload="resnet50", batch_size=-4)
    assert negative.value.field == "batch_size"


def test_a_run_records_only_what_was_given() -> None:
    run = job_task(workload="resnet50", for_run=True)
    assert run == {"task_type": "training", "workload": "resnet50"} and run.assumed == ()
