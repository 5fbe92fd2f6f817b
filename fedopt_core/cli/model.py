"""`fedopt model train|list|activate|calibration|suspects`: versions of the predictor and their held-out metrics."""

from __future__ import annotations

import argparse
import sys

from fedopt_core.cli import CliError, emit


def cmd_train(args: argparse.Namespace) -> int:
    from fedopt_core.prediction import training

    def show(stage: str, fraction: float) -> None:
        if not args.json:
            print(f"[{fraction:4.0%}] {stage}", file=sys.stderr)

    try:
        result = training.train_now(progress=show)
    except training.RetrainBusy as exc:
        raise CliError(str(exc), code=5) from None
    except training.NotEnoughRuns as exc:
        raise CliError(f"{exc}; log more runs (fedopt runs log / import) first", code=6) from None
    emit({"version": result.version_id, "status": result.status, "reason": result.reason, **result.metrics}, args.json)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from fedopt_core.prediction import training

    emit(
        training.list_versions(),
        args.json,
        ["version", "created_at", "status", "n_train_runs", "median_ape", "coverage", "reason"],
    )
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    from fedopt_core.prediction import training

    training.activate_version(args.version)
    print(f"version {args.version} is now active")
    return 0


def _active_model(args: argparse.Namespace):  # noqa: ANN202 - (PerformancePredictor, facts)
    from fedopt_core.prediction import training

    model, facts = training.active_model()
    if model is None:
        raise CliError("no active model yet: train one first (fedopt model train)", code=6)
    return model, facts


def cmd_calibration(args: argparse.Namespace) -> int:
    from fedopt_core.prediction import training

    model, facts = _active_model(args)
    curve = training.calibration_curve(model)
    if curve.empty:
        raise CliError("no held-out runs to score the intervals on; log more runs", code=6)
    emit(curve.assign(version=facts["version"]), args.json, ["version", "nominal", "observed", "n"])
    return 0


def cmd_suspects(args: argparse.Namespace) -> int:
    from fedopt_core.prediction import training

    model, _ = _active_model(args)
    emit(
        training.suspect_configurations(model),
        args.json,
        ["workload", "precision", "software", "gpu_type", "gpu_count", "n_runs", "measured_vs_expected"],
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    model = sub.add_parser("model", help="predictor versions").add_subparsers(dest="model_command", required=True)
    p = model.add_parser("train", help="train a candidate now; it becomes active only if at least as good")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)
    p = model.add_parser("list", help="model versions with their held-out metrics")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = model.add_parser("activate", help="make an older version active again (roll back)")
    p.add_argument("version", type=int)
    p.set_defaults(func=cmd_activate)
    p = model.add_parser("calibration", help="nominal against observed interval coverage of the active model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_calibration)
    p = model.add_parser("suspects", help="measured configurations the other GPUs contradict (runs to check)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_suspects)
