"""Answer "where should this job run?": the active model (or the labelled heuristic), the
catalogue, data movement, the ranking, and which account would pay, in one call.

The Predict & compare page, the Plan page and ``fedopt predict`` all come through here, so they
give the same answer for the same question and every answer says how it was obtained.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlmodel import Session

from fedopt_core import db, formatting, schema
from fedopt_core.accounts.usage import usage_in_window
from fedopt_core.catalog.platforms import list_platforms
from fedopt_core.errors import PlanningError
from fedopt_core.planning import shards, spot
from fedopt_core.planning.ranking import OBJECTIVES, rank_platforms
from fedopt_core.prediction import training, work
from fedopt_core.prediction.estimator import PerformancePredictor
from fedopt_core.runs.predictions import record_predictions
from fedopt_core.runs.queries import list_runs, run_facets


@dataclass
class Comparison:
    """A ranked comparison of platforms for one task."""

    ranking: pd.DataFrame
    method: str  # "model" or "heuristic" (the active model's label; rows carry their own)
    model_version: int | None
    n_training_runs: int
    recommendation: dict[str, Any] | None
    reason: str
    warnings: list[str] = field(default_factory=list)
    confidence: float | None = None  # nominal level of the intervals (None: heuristic, no level)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "confidence": self.confidence,
            "model_version": self.model_version,
            "n_training_runs": self.n_training_runs,
            "recommendation": self.recommendation,
            "reason": self.reason,
            "warnings": self.warnings,
            "platforms": self.ranking.to_dict("records"),
        }


@dataclass(frozen=True)
class ActiveModel:
    """What answers come from: the active trained version, or an unfitted predictor (heuristic).

    A page takes it once per run (:func:`current_model`) and hands it to every question it asks,
    so one Predict click reads the active version once.
    """

    predictor: Any
    facts: dict[str, Any] | None = None
    database: str | None = None

    @property
    def trained(self) -> bool:
        return self.facts is not None

    @property
    def version(self) -> int | None:
        return int(self.facts["version"]) if self.facts else None

    @property
    def n_train_runs(self) -> int:
        return int(self.facts["n_train_runs"]) if self.facts else 0

    def interval_levels(self) -> tuple[list[float], float | None]:
        """Interval levels the model keeps, and its own; ([], None) before a model is trained."""
        if not self.trained:
            return [], None
        own = float(self.predictor.confidence)
        return self.predictor.calibrated_levels() or [own], own

    def importances(self) -> pd.DataFrame:
        """Permutation importances of the model (computed once per version and process)."""
        if not self.trained:
            return pd.DataFrame(columns=["feature", "importance", "std"])
        return training.cached_importances(self.predictor, self.version, self.database)


def current_model(*, session: Session | None = None) -> ActiveModel:
    """The active trained model, or an unfitted predictor whose answers are labelled heuristic."""
    with db.use(session) as db_session:
        predictor, facts = training.active_model(session=db_session)
        database = db.database_key(db_session)
    return ActiveModel(predictor if predictor is not None else PerformancePredictor(), facts, database)


#: At most this many logged runs of the task's workload are used as anchors for one prediction.
MAX_LOGGED_ANCHORS = 2000


def anchor_frame(
    task: Mapping[str, Any], anchor: Mapping[str, Any] | None, *, session: Session | None = None
) -> pd.DataFrame | None:
    """Measured runs to scale a prediction from: the user's "I already ran it on X in T seconds",
    and every logged run of the same workload, so a run counts at once, before any retrain."""
    frames = []
    if anchor:
        run = {**{k: v for k, v in task.items() if k in schema.TASK_FIELDS}, **anchor}
        run.setdefault("gpu_count", 1)
        frames.append(pd.DataFrame([schema.validate_run(run)]))
    if task.get("workload"):
        logged = list_runs(workload=task["workload"], success=True, limit=MAX_LOGGED_ANCHORS, session=session)
        if not logged.empty:
            frames.append(schema.normalise_frame(logged)[schema.RUN_FIELDS])
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True)


def compare(
    task: Mapping[str, Any],
    platforms: pd.DataFrame | None = None,
    *,
    objective: str = "time",
    deadline_s: float | None = None,
    budget_usd: float | None = None,
    anchor: Mapping[str, Any] | None = None,
    record: bool = False,
    confidence: float | None = None,
    model: ActiveModel | None = None,
    session: Session | None = None,
) -> Comparison:
    """Rank ``platforms`` (default: every available GPU platform in the catalogue) for ``task``.

    ``confidence``: the nominal level of the intervals (and so of the deadline check, made on the
    upper bound), one the trained model keeps (see :func:`interval_levels`); None = the model's own.
    Predictions recorded at another level keep their point estimate only, so the interval coverage
    measured on real outcomes stays at one level.  ``model``: what :func:`current_model` gave the
    caller (read again when not given); the task is validated here, once.
    """
    if objective not in OBJECTIVES:
        raise PlanningError("objective", f"{objective!r} is not one of {', '.join(OBJECTIVES)}")
    for name, value in (("deadline_s", deadline_s), ("budget_usd", budget_usd)):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise PlanningError(name, "must be a positive number")
    task = schema.validate_task(task)
    if platforms is None:
        platforms = list_platforms(include_cpu=False, include_unavailable=False, session=session)
    if platforms.empty:
        return Comparison(platforms, "heuristic", None, 0, None, "No platforms to compare: widen the filters.")
    model = model or current_model(session=session)
    predictor, facts = model.predictor, model.facts
    own_level = float(predictor.confidence)
    level_note = None
    if confidence is not None and abs(float(confidence) - own_level) > 1e-9:
        if facts is None:
            level_note = (
                "the interval level applies to a trained model only: the heuristic's intervals are "
                "deliberately wide guesses"
            )
        else:
            predictor = predictor.with_confidence(confidence)
    anchors = anchor_frame(task, anchor, session=session)
    ranked = rank_platforms(
        task,
        platforms,
        objective=objective,
        deadline_s=deadline_s,
        budget_usd=budget_usd,
        predictor=predictor,
        anchors=anchors,
    )
    too_big = (ranked["fits_memory"] == False).to_numpy(bool)  # noqa: E712 (None: not known)
    # Each platform's "does not fit" note stays on its row; the page-wide list says it once.
    row_warnings = ranked.loc[~too_big, "warning"] if "warning" in ranked else pd.Series(dtype=object)
    warnings = sorted({w for w in row_warnings.dropna() if w})
    if too_big.any():
        warnings.append(f"{int(too_big.sum())} of {len(ranked)} platforms cannot hold the job in memory (ranked last)")
    if level_note:
        warnings.append(level_note)
    warnings.extend(task.assumed)
    # Logged runs of the workload were just read as anchors: look for similar names only without them.
    logged = anchors is not None and (anchors["workload"] == task.get("workload")).any()
    similar = [] if logged else similar_workloads(task.get("workload"), session=session)
    if similar:
        warnings.append(
            f"no run of {task['workload']!r} is stored; measured workloads with a similar name: {', '.join(similar)}"
        )
    method = "model" if facts is not None else "heuristic"
    best = ranked.iloc[0].to_dict()
    if too_big.all():
        # Never recommend a machine the job cannot fit on: say what it would need instead.
        recommendation = None
        reason = _no_fit_reason(task, ranked)
    else:
        recommendation = {
            k: best.get(k)
            for k in (
                "platform",
                "provider",
                "gpu_type",
                "gpu_count",
                "predicted_time_s",
                "lower_s",
                "upper_s",
                "cost_usd",
                "method",
                "fits_memory",
                "memory_per_gpu_gb",
            )
        }
        reason = _reason(ranked, objective, deadline_s, budget_usd)
    if record:
        rows = ranked.assign(**task)
        if abs(float(predictor.confidence) - own_level) > 1e-9:
            rows = rows.assign(lower_s=np.nan, upper_s=np.nan)
        record_predictions(rows, model_version_id=facts["version"] if facts else None, session=session)
    n_runs = int(facts["n_train_runs"]) if facts else 0
    return Comparison(
        ranked,
        method,
        facts["version"] if facts else None,
        n_runs,
        recommendation,
        reason,
        warnings,
        confidence=float(predictor.confidence) if facts is not None else None,
    )


def similar_workloads(workload: str | None, *, limit: int = 3, session: Session | None = None) -> list[str]:
    """Stored workloads whose name is close to ``workload`` when it has no run of its own
    ("bert" -> bert_large_squad, bert_base_squad); [] when it has runs or nothing is close."""
    if not workload:
        return []
    known = run_facets("workload", session=session)["workload"]
    key = workload.strip().lower()
    if key in {w.lower() for w in known}:
        return []
    containing = [w for w in known if key in w.lower()]
    close = difflib.get_close_matches(workload, known, n=limit, cutoff=0.6)
    return list(dict.fromkeys([*containing, *close]))[:limit]


def predicted_for_runs(
    frame: pd.DataFrame, *, model: ActiveModel | None = None, session: Session | None = None
) -> pd.DataFrame:
    """What the active model (or the heuristic, before one) predicts for runs that happened, each
    on its own (no anchors, so a run is not explained by itself): ``predicted_time_s``,
    ``lower_s``, ``upper_s`` and ``method``, one row per row of ``frame``, in its order."""
    model = model or current_model(session=session)
    rows = schema.normalise_frame(frame.reset_index(drop=True))[schema.RUN_FIELDS]
    answer = model.predictor.predict_frame(rows)
    method = "model" if model.trained else "heuristic"
    return answer[["predicted_time_s", "lower_s", "upper_s"]].reset_index(drop=True).assign(method=method)


def interval_levels(*, session: Session | None = None) -> tuple[list[float], float | None]:
    """Interval levels the active model keeps, and its own; ([], None) before a model is trained."""
    return current_model(session=session).interval_levels()


def _reason(ranked: pd.DataFrame, objective: str, deadline_s: float | None, budget_usd: float | None) -> str:
    best = ranked.iloc[0]
    what = {
        "time": "the shortest predicted time",
        "cost": "the lowest predicted cost",
        "balanced": "the best balance of time and cost",
    }[objective]
    parts = [
        f"{best['platform']} has {what}: {formatting.duration(best['predicted_time_s'])} "
        f"({formatting.duration(best['lower_s'])} to {formatting.duration(best['upper_s'])}), ${best['cost_usd']:.2f}"
    ]
    if deadline_s is not None:
        meeting = int(ranked["meets_deadline"].sum())
        parts.append(f"{meeting} of {len(ranked)} platforms meet the deadline even at the upper bound")
        if not best["meets_deadline"]:
            parts.append("none meets the deadline with confidence; this is the closest")
    if budget_usd is not None:
        parts.append(f"{int(ranked['within_budget'].sum())} fit the budget")
    return "; ".join(parts) + "."


def _no_fit_reason(task: Mapping[str, Any], ranked: pd.DataFrame) -> str:
    """Why nothing is recommended: the job fits none of the platforms, and what it would need."""
    closest = ranked.loc[ranked["memory_per_gpu_gb"].idxmin()]
    parts = [f"The job fits on none of these {len(ranked)} platforms (at best it {closest['memory_note']})"]
    job = work.describe_job(task)
    capacity = ranked.groupby("gpu_type")["gpu_memory_gb_available"].first().dropna()
    needs = []
    for gpu, gb in capacity.sort_values(ascending=False).items():
        count = work.smallest_fitting_count(job.model, job.mode, job.precision, float(gb), **job.shape())
        if count is not None:
            needs.append(f"{count}x {gpu}")
    if needs:
        parts.append("it would fit on " + ", ".join(needs[:3]))
    return "; ".join(parts) + "."


def what_if_configurations(catalogue: pd.DataFrame, gpu_type: str, gpu_counts: list[int]) -> pd.DataFrame:
    """Hand-picked machines for a what-if question: ``gpu_counts`` of ``gpu_type``, each priced at
    the catalogue's median price per GPU-hour of that GPU times its count (NaN when unpriced)."""
    per_gpu = catalogue.loc[catalogue["gpu_type"] == gpu_type, "price_per_gpu_hour_usd"].median()
    return pd.DataFrame(
        {
            "platform": [f"{n}x {gpu_type}" for n in gpu_counts],
            "provider": "what-if",
            "gpu_type": gpu_type,
            "gpu_count": list(gpu_counts),
            "price_per_hour_usd": [per_gpu * n for n in gpu_counts],
        }
    )


def what_if(
    task: Mapping[str, Any],
    platforms: pd.DataFrame,
    *,
    session: Session | None = None,
    anchor: Mapping[str, Any] | None = None,
    model: ActiveModel | None = None,
) -> pd.DataFrame:
    """Predicted time and cost of ``task`` on a few hand-picked configurations (what-if rows).

    ``platforms`` rows give gpu_type, gpu_count and price_per_hour_usd; the model does the rest.
    """
    task = schema.validate_task(task)
    return rank_platforms(
        task,
        platforms,
        objective="time",
        predictor=(model or current_model(session=session)).predictor,
        anchors=anchor_frame(task, anchor, session=session),
    )


# --------------------------------------------------------------------------- planning


def plan(
    task: Mapping[str, Any],
    platforms: pd.DataFrame,
    work_units: float,
    *,
    objective: str = "makespan",
    deadline_s: float | None = None,
    budget_usd: float | None = None,
    model: ActiveModel | None = None,
    session: Session | None = None,
) -> shards.ShardPlan:
    """A shard plan for ``task`` over ``platforms`` (with a ``count`` column), rates from the current predictor."""
    predictor = (model or current_model(session=session)).predictor
    rows = platforms.copy()
    rows["platform"] = rows.get("platform", rows.get("instance_type"))
    return shards.plan_for_task(
        schema.validate_task(task),
        rows,
        predictor,
        int(work_units),
        objective=objective,
        deadline_s=deadline_s,
        budget_usd=budget_usd,
    )


def spot_advice(
    task: Mapping[str, Any],
    platforms: pd.DataFrame,
    *,
    preemptions_per_hour: float | None,
    checkpoint_cost_s: float,
    deadline_s: float | None = None,
    model: ActiveModel | None = None,
    session: Session | None = None,
) -> pd.DataFrame:
    """Spot against on-demand for the platforms that have a spot price, with predicted compute time.

    Without a preemption rate from the user, it is learned from the group's usage sessions that
    ended in preemption; with neither, the advisor is not run (returns an empty frame).
    """
    # Both prices positive: a free machine (the group's own) has no spot-versus-on-demand question.
    spot_price = pd.to_numeric(platforms["spot_price_per_hour_usd"], errors="coerce")
    on_demand = pd.to_numeric(platforms["price_per_hour_usd"], errors="coerce")
    with_spot = platforms[(spot_price > 0) & (on_demand > 0)].copy()
    if with_spot.empty:
        return with_spot
    if preemptions_per_hour is None:
        preemptions_per_hour = learned_preemption_rate(session=session)
        if preemptions_per_hour is None:
            return with_spot.iloc[0:0]
    predictor = (model or current_model(session=session)).predictor
    with_spot["platform"] = with_spot["instance_type"]
    times = rank_platforms(schema.validate_task(task), with_spot, objective="time", predictor=predictor)
    merged = with_spot.merge(times[["platform", "predicted_time_s", "method"]], on="platform")
    frame = pd.DataFrame(
        {
            "platform": merged["platform"],
            "provider": merged["provider"],
            "method": merged["method"],
            "compute_time_s": merged["predicted_time_s"],
            "on_demand_price_per_hour_usd": merged["price_per_hour_usd"],
            "spot_price_per_hour_usd": merged["spot_price_per_hour_usd"],
            "preemptions_per_hour": preemptions_per_hour,
            "checkpoint_cost_s": checkpoint_cost_s,
        }
    )
    return spot.advise_spot_frame(frame, deadline_s=deadline_s)


def learned_preemption_rate(*, session: Session | None = None) -> float | None:
    """Preemptions per spot hour from the group's usage sessions, or None without spot history."""
    sessions = usage_in_window(
        pd.Timestamp("2000-01-01", tz="UTC").to_pydatetime(),
        pd.Timestamp.now(tz="UTC").to_pydatetime(),
        session=session,
    )
    if sessions.empty or not (sessions["outcome"] == "preempted").any():
        return None
    return spot.preemption_rate_from_sessions(sessions)
