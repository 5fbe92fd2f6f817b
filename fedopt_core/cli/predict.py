"""`fedopt predict`: predicted time and cost of a task on each catalogue platform, ranked."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from fedopt_core.cli import CliError, emit, job_from_args
from fedopt_core.planning.ranking import OBJECTIVES
from fedopt_core.schema import MODES

if TYPE_CHECKING:
    import pandas as pd


def cmd_predict(args: argparse.Namespace) -> int:
    from fedopt_core import catalog
    from fedopt_core.planning import advisor, serving

    task = job_from_args(args)
    platforms = catalog.list_platforms(include_cpu=False, include_unavailable=False)
    if args.platform:
        platforms = platforms[platforms["instance_type"].isin(args.platform)]
        missing = sorted(set(args.platform) - set(platforms["instance_type"]))
        if missing:
            raise CliError(f"--platform: no such platform in the catalogue: {', '.join(missing)}")
    anchor = None
    if args.ran_on:
        if not args.ran_seconds:
            raise CliError("--ran-seconds: give the measured seconds of the run on --ran-on")
        anchor = {"gpu_type": args.ran_on, "gpu_count": args.ran_gpus, "execution_time_s": args.ran_seconds}
    result = advisor.compare(
        task,
        platforms,
        objective=args.objective,
        deadline_s=args.deadline,
        budget_usd=args.budget,
        anchor=anchor,
        confidence=args.confidence,
    )
    fleet = _fleet(task, result.ranking, args.target_tokens_per_s)
    if args.json:
        answer = result.to_dict()
        if fleet is not None:
            answer["target_tokens_per_s"] = args.target_tokens_per_s
            answer["serving"] = fleet.to_dict("records")
        emit(answer, True)
        return 0
    label = (
        f"model version {result.model_version} ({result.n_training_runs} runs)"
        if result.method == "model"
        else "HEURISTIC (no trained model yet): wide intervals"
    )
    print(f"Method: {label}\n{result.reason}")
    for warning in result.warnings:  # what was assumed for the job, and what the answer cannot promise
        print(f"Note: {warning}")
    print()
    columns = ["platform", "gpu_type", "gpu_count", "predicted_time_s", "lower_s", "upper_s", "cost_usd", "method"]
    if result.ranking["fits_memory"].notna().any():
        columns += ["fits_memory", "memory_per_gpu_gb"]
    if result.ranking["tokens_per_s"].notna().any():
        columns += ["tokens_per_s", "cost_per_1m_tokens_usd"]
    emit(result.ranking, False, columns)
    if fleet is not None:
        print(
            f"\nServing {args.target_tokens_per_s:g} tokens/s: replicas sized on the interval's upper bound; "
            "mean TPOT derived from concurrency / tokens/s (p99 is about twice it; TTFT not predicted)"
        )
        emit(fleet, False, [*serving.FLEET_SUMMARY, "serving_note"])
    return 0


def _fleet(task: dict[str, object], ranking: pd.DataFrame, target: float | None) -> pd.DataFrame | None:
    """The serving fleet for ``--target-tokens-per-s`` (None when not asked)."""
    from fedopt_core.errors import PlanningError
    from fedopt_core.planning.serving import serving_fleet

    if target is None:
        return None
    try:
        return serving_fleet(task, ranking, target)
    except PlanningError as exc:
        raise CliError(f"--target-tokens-per-s: {exc}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict time and cost of a task on each platform, ranked")
    p.add_argument(
        "--task-type", dest="task_type", help="training, fine-tuning, inference (default: what --mode implies)"
    )
    p.add_argument("--workload")
    p.add_argument("--model", help="a catalogued model (fedopt models list), e.g. llama-3.1-8b; sets the workload")
    p.add_argument("--mode", help="how it runs: " + ", ".join(MODES))
    p.add_argument("--tokens", type=float, help="tokens to train on or generate, e.g. 2e8 (work in tokens)")
    p.add_argument("--seq-len", dest="seq_len", type=float, help="tokens per sequence (default 4096)")
    p.add_argument("--params-b", dest="model_params_b", type=float, help="model size in billions (unlisted model)")
    p.add_argument("--active-params-b", dest="active_params_b", type=float, help="active billions per token (MoE)")
    p.add_argument("--prompt-tokens", dest="prompt_tokens", type=float, help="input tokens per request")
    p.add_argument("--output-tokens", dest="output_tokens", type=float, help="generated tokens per request")
    p.add_argument("--concurrency", type=float, help="requests served at once")
    p.add_argument(
        "--target-tokens-per-s",
        dest="target_tokens_per_s",
        type=float,
        help="serving: the rate to sustain; adds the replicas and GPUs each platform needs",
    )
    p.add_argument(
        "--confidence",
        type=float,
        help="interval level, e.g. 0.95 (one the trained model keeps: see fedopt model calibration)",
    )
    p.add_argument("--precision")
    p.add_argument("--batch-size", dest="batch_size", type=float)
    p.add_argument("--work-units", dest="work_units", type=float, help="samples, images or steps (default 1,000,000)")
    p.add_argument("--software")
    p.add_argument("--input-size-mb", dest="input_size_mb", type=float)
    p.add_argument("--output-size-mb", dest="output_size_mb", type=float)
    p.add_argument("--memory-required-gb", dest="memory_required_gb", type=float)
    p.add_argument("--gpu-memory-required-gb", dest="gpu_memory_required_gb", type=float)
    p.add_argument("--platform", action="append", help="only this instance type (repeatable); default all")
    p.add_argument("--objective", choices=OBJECTIVES, default="time")
    p.add_argument("--deadline", type=float, help="deadline in seconds")
    p.add_argument("--budget", type=float, help="budget in USD")
    p.add_argument("--ran-on", help="GPU of a run you already measured (scales the prediction from it)")
    p.add_argument("--ran-gpus", type=int, default=1)
    p.add_argument("--ran-seconds", type=float)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)
