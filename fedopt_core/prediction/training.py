"""Retraining policy: model versions, champion/challenger, and one retrain at a time.

A candidate is trained on all runs but the newest ones of each kind of job, scored on those (median
absolute percentage error and interval coverage), and compared with the active model on the
same held-out runs.  It becomes active only if it is at least as good; otherwise it is kept,
marked rejected, with the reason.  The stored model is the one that was scored (no refit on the
held-out runs): the comparison stays fair, because the held-out set is always the newest part
of the runs and so was never seen by an older model.  Runs newer than the model still count at
once: predictions use every logged run of the same workload as an anchor (see advisor.py).

Only one retrain runs at a time across threads and processes: a lease in the database
(:mod:`.leases`), renewed while training, free when it expires or its holder on this host is gone.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func
from sqlmodel import Session, select

from fedopt_core import auth, db
from fedopt_core.config import get_settings
from fedopt_core.errors import FedoptInputError
from fedopt_core.models import AppState, ModelVersion, Run, utcnow
from fedopt_core.prediction.estimator import PerformancePredictor
from fedopt_core.prediction.leases import (  # noqa: F401 - lease_holder and holder_alive are part of this API
    LEASE_TTL,
    acquire_lease,
    holder_alive,
    lease_holder,
    release_lease,
)
from fedopt_core.prediction.leases import new_holder_id as _holder_id
from fedopt_core.runs.queries import training_frame

log = logging.getLogger(__name__)

LEASE_NAME = "retrain"
PROGRESS_KEY = "training_progress"
#: Fraction of runs, newest first, held out to score a candidate (at least MIN_HOLDOUT runs).
HOLDOUT_FRACTION = 0.2
MIN_HOLDOUT = 5
#: Coverage on a few dozen held-out runs is noisy; a candidate may be this much further from the
#: nominal coverage than the active model and still count as "at least as good".
COVERAGE_TOLERANCE = 0.05


class RetrainBusy(RuntimeError):
    """Another retrain holds the lease."""


class NotEnoughRuns(ValueError):
    """Too few successful runs to train and score a model."""


# --------------------------------------------------------------------------- the lease


# --------------------------------------------------------------------------- progress


def _progress(stage: str, fraction: float, **extra: Any) -> None:
    # Committed at once, so the Model page of every process shows how far the retrain got.
    with db.session_scope() as db_session:
        row = db_session.get(AppState, PROGRESS_KEY) or AppState(key=PROGRESS_KEY)
        row.value = {"stage": stage, "fraction": fraction, "at": utcnow().isoformat(), **extra}
        row.updated_at = utcnow()
        db_session.add(row)


def training_status(*, session: Session | None = None) -> dict[str, Any]:
    """Whether a retrain is running (and how far it got), for the Model page."""
    with db.use(session) as db_session:
        row = db_session.get(AppState, PROGRESS_KEY)
        progress = dict(row.value) if row else {}
    return {"running": lease_holder(session=session) is not None, **progress}


# --------------------------------------------------------------------------- metrics


def score(predictions: pd.DataFrame, actual_s: np.ndarray) -> dict[str, float]:
    """Median absolute percentage error and empirical interval coverage of a prediction frame."""
    actual_s = np.asarray(actual_s, dtype=float)
    predicted = predictions["predicted_time_s"].to_numpy(float)
    ape = np.abs(predicted - actual_s) / actual_s
    inside = (predictions["lower_s"].to_numpy(float) <= actual_s) & (actual_s <= predictions["upper_s"].to_numpy(float))
    return {
        "median_ape": float(np.median(ape)),
        "mean_ape": float(np.mean(ape)),
        "coverage": float(np.mean(inside)),
        "n_holdout": int(len(actual_s)),
    }


def holdout_stratum(runs: pd.DataFrame) -> pd.Series:
    """The kind of job each run is, for the held-out split: its task type, and whether it is
    described by model and mode (an LLM job the physics model learns from) or not."""
    described = runs["mode"].notna() | runs["model_params_b"].notna()
    kind = runs["task_type"].astype("string").fillna("?")
    return kind + np.where(described.to_numpy(bool), ":described", "")


def _split_newest(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Oldest runs to train on, newest to score on: the newest fraction of *each kind of job*.

    Per kind, because one import is usually one kind (a benchmark table, then a file of LLM
    runs): a global newest 20% would hold out nearly all of the last one, and the stored model
    would never learn from it.  Still fair to the active model: a kind's held-out window only
    moves forward as runs arrive, so it never reaches back into runs an older version trained on.
    """
    ordered = runs.sort_values(["created_at", "run_id"], kind="stable").reset_index(drop=True)
    n_hold = max(MIN_HOLDOUT, int(round(len(ordered) * HOLDOUT_FRACTION)))
    if len(ordered) < 2 * n_hold:
        raise NotEnoughRuns(f"{len(ordered)} successful runs; at least {2 * n_hold} are needed to train and score")
    stratum = holdout_stratum(ordered)
    position_from_newest = ordered.groupby(stratum, sort=False).cumcount(ascending=False).to_numpy()
    per_kind = stratum.map((stratum.value_counts() * HOLDOUT_FRACTION).round()).to_numpy(float)
    held = position_from_newest < per_kind
    if held.sum() < MIN_HOLDOUT:  # kinds too small to give a fifth each: the newest runs overall
        held = np.arange(len(ordered)) >= len(ordered) - n_hold
    return ordered.loc[~held], ordered.loc[held]


def is_at_least_as_good(candidate: dict[str, float], active: dict[str, float], confidence: float) -> tuple[bool, str]:
    """The acceptance rule, with the reason either way."""
    ape_ok = candidate["median_ape"] <= active["median_ape"] + 1e-12
    cand_gap = abs(candidate["coverage"] - confidence)
    active_gap = abs(active["coverage"] - confidence)
    coverage_ok = cand_gap <= active_gap + COVERAGE_TOLERANCE
    detail = (
        f"median APE {candidate['median_ape']:.3f} vs active {active['median_ape']:.3f}; "
        f"coverage {candidate['coverage']:.2f} vs active {active['coverage']:.2f} (nominal {confidence:.2f})"
    )
    if ape_ok and coverage_ok:
        return True, f"at least as good as the active model: {detail}"
    why = "higher median error" if not ape_ok else "interval coverage further from nominal"
    return False, f"rejected, {why}: {detail}"


# --------------------------------------------------------------------------- versions


def _load_artifact(artifact: bytes):  # noqa: ANN202 - PerformancePredictor
    return PerformancePredictor.from_bytes(artifact)


@dataclass
class TrainResult:
    version_id: int
    status: str
    reason: str
    metrics: dict[str, Any]


def train_now(
    *,
    predictor_factory: Callable[[], Any] | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> TrainResult:
    """Train, score and maybe activate a candidate, holding the retrain lease; raises RetrainBusy."""
    auth.require("member", "training a model")
    holder = _holder_id()
    if not acquire_lease(LEASE_NAME, holder):
        raise RetrainBusy(f"a retrain is already running ({lease_holder()})")
    stop_renewing = threading.Event()

    def renew() -> None:  # keep the lease while a long fit runs; a dead process stops renewing
        while not stop_renewing.wait(LEASE_TTL.total_seconds() / 3):
            acquire_lease(LEASE_NAME, holder)

    renewer = threading.Thread(target=renew, daemon=True)
    renewer.start()

    def step(stage: str, fraction: float) -> None:
        _progress(stage, fraction)
        if progress:
            progress(stage, fraction)

    try:
        make = predictor_factory or PerformancePredictor
        step("loading runs", 0.05)
        train, holdout = _split_newest(training_frame())
        step(f"fitting a candidate on {len(train)} runs", 0.15)
        candidate = make().fit(train)
        confidence = float(getattr(candidate, "confidence", 0.9))
        step(f"scoring on the {len(holdout)} newest runs", 0.55)
        metrics = score(candidate.predict_frame(holdout), holdout["execution_time_s"].to_numpy(float))
        with db.session_scope() as db_session:
            active = db_session.exec(select(ModelVersion).where(ModelVersion.status == "active")).first()
            active_id, active_artifact = (active.id, active.artifact) if active else (None, None)
        if active_artifact is not None:
            active_metrics = score(
                _load_artifact(active_artifact).predict_frame(holdout), holdout["execution_time_s"].to_numpy(float)
            )
            accepted, reason = is_at_least_as_good(metrics, active_metrics, confidence)
            metrics |= {f"active_{k}": v for k, v in active_metrics.items() if k != "n_holdout"}
            metrics["compared_with_version"] = active_id
        else:
            accepted, reason = True, "first model: nothing active to compare with"
        artifact = candidate.to_bytes()
        features = list(getattr(candidate, "feature_names_", []))
        step("saving", 0.95)
        with db.session_scope() as db_session:
            now = utcnow()
            if accepted:
                for row in db_session.exec(select(ModelVersion).where(ModelVersion.status == "active")).all():
                    row.status = "retired"
                    db_session.add(row)
            version = ModelVersion(
                status="active" if accepted else "rejected",
                n_train_runs=len(train),
                features=features,
                metrics=metrics,
                reason=reason,
                artifact=artifact,
                activated_at=now if accepted else None,
            )
            db_session.add(version)
            db_session.flush()
            auth.record(
                "model.train", f"version {version.id}", {"status": version.status, "reason": reason}, session=db_session
            )
            result = TrainResult(int(version.id), version.status, reason, metrics)
        step("done", 1.0)
        return result
    except Exception as exc:
        _progress("failed", 1.0, error=str(exc))
        raise
    finally:
        stop_renewing.set()
        release_lease(LEASE_NAME, holder)


def retrain_threshold() -> int:
    """How many new runs start a background retrain (FEDOPT_RETRAIN_EVERY, default 10)."""
    return get_settings().retrain_every_n_runs


def runs_since_last_version(*, session: Session | None = None) -> int:
    """How many runs were logged after the newest model version was trained."""
    with db.use(session) as db_session:
        last = db_session.exec(select(func.max(ModelVersion.created_at))).one()
        query = select(func.count()).select_from(Run)
        if last is not None:
            query = query.where(Run.created_at > last)
        return int(db_session.exec(query).one())


def maybe_retrain_async(
    *,
    every_n_runs: int | None = None,
    predictor_factory: Callable[[], Any] | None = None,
    force: bool = False,
    separate_process: bool = False,
) -> threading.Thread | None:
    """Start a background retrain when N runs arrived since the last version (or when forced).

    Returns a thread (with ``separate_process``, the thread that waits for the child process), or
    None when no retrain is due or one is already running.  The caller never waits: logging a run
    stays instant while a model trains.  The dashboard uses a separate process, so a long fit does
    not compete with every user's page for this interpreter (about 2x slower pages in a thread,
    see benchmarks/ingest.py); the retrain is still recorded as the acting user's.
    """
    every = every_n_runs or get_settings().retrain_every_n_runs
    if not force and runs_since_last_version() < every:
        return None
    if lease_holder() is not None:
        return None
    actor = auth.current_actor()
    if separate_process:
        if predictor_factory is not None:
            raise ValueError("predictor_factory: a separate process trains the default predictor only")
        auth.require("member", "training a model")
        return _retrain_in_child(actor, get_settings().database_url)

    def work() -> None:
        with auth.acting_as(actor):
            try:
                train_now(predictor_factory=predictor_factory)
            except (RetrainBusy, NotEnoughRuns) as exc:
                log.info("retrain skipped: %s", exc)
            except Exception:
                log.exception("retrain failed")

    thread = threading.Thread(target=work, name="fedopt-retrain", daemon=True)
    thread.start()
    return thread


_ACTOR_ENV = "FEDOPT_RETRAIN_ACTOR"


def _retrain_in_child(actor: auth.Actor, database_url: str) -> threading.Thread:
    """``python -m fedopt_core.prediction.training`` with the database URL and the actor in its environment
    (never on its command line, where a password in the URL would show in the process list)."""
    env = dict(os.environ)
    env[_ACTOR_ENV] = json.dumps(dataclasses.asdict(actor))
    env["DATABASE_URL"] = database_url
    child = subprocess.Popen(
        [sys.executable, "-m", "fedopt_core.prediction.training"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )

    def reap() -> None:  # wait for it, so it never lingers as a zombie, and log what went wrong
        _, err = child.communicate()
        if child.returncode != 0:
            log.error("retrain process exited with %s: %s", child.returncode, err.strip()[-2000:])

    waiter = threading.Thread(target=reap, name="fedopt-retrain-process", daemon=True)
    waiter.start()
    return waiter


def _child_main() -> int:
    """Entry of the retrain process started by :func:`maybe_retrain_async`."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    raw = os.environ.get(_ACTOR_ENV)
    actor = auth.Actor(**json.loads(raw)) if raw else auth.LOCAL_ADMIN
    with auth.acting_as(actor):
        try:
            result = train_now()
        except (RetrainBusy, NotEnoughRuns) as exc:
            log.info("retrain skipped: %s", exc)
            return 0
    log.info("version %s %s: %s", result.version_id, result.status, result.reason)
    return 0


def list_versions(*, session: Session | None = None) -> pd.DataFrame:
    """Every model version, newest first, with its held-out metrics."""
    # Not the stored models: a few hundred kB each, and a version is kept for every retrain.
    columns = (
        ModelVersion.id,
        ModelVersion.created_at,
        ModelVersion.status,
        ModelVersion.n_train_runs,
        ModelVersion.metrics,
        ModelVersion.reason,
        ModelVersion.features,
    )
    with db.use(session) as db_session:
        rows = db_session.exec(select(*columns).order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())).all()
        records = [
            {
                "version": r.id,
                "created_at": r.created_at,
                "status": r.status,
                "n_train_runs": r.n_train_runs,
                "median_ape": r.metrics.get("median_ape"),
                "coverage": r.metrics.get("coverage"),
                "n_holdout": r.metrics.get("n_holdout"),
                "reason": r.reason,
                "features": len(r.features or []),
            }
            for r in rows
        ]
    return pd.DataFrame(
        records,
        columns=[
            "version",
            "created_at",
            "status",
            "n_train_runs",
            "median_ape",
            "coverage",
            "n_holdout",
            "reason",
            "features",
        ],
    )


def activate_version(version_id: int, *, session: Session | None = None) -> None:
    """Make an older (or rejected) version the active one: a roll-back."""
    auth.require("member", "activating a model version")
    with db.use(session) as db_session:
        target = db_session.get(ModelVersion, version_id)
        if target is None or target.artifact is None:
            raise FedoptInputError("version", f"no model version {version_id} with a stored model")
        for row in db_session.exec(select(ModelVersion).where(ModelVersion.status == "active")).all():
            row.status = "retired"
            db_session.add(row)
        target.status, target.activated_at = "active", utcnow()
        db_session.add(target)
        auth.record("model.activate", f"version {version_id}", {}, session=db_session)


class _BoundedCache:
    """The few most recently used values by key (models, importances): a process never holds more.

    A dashboard serves one database, so in practice this holds the active version and the one
    before it while a roll-back or a retrain settles; an old version is dropped, not kept forever.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: tuple[str, int], make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()  # outside the lock: loading a model must not block other keys' readers
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)


#: Loaded predictors and their importances, by (database, version).
MODEL_CACHE_SIZE = 4
_models = _BoundedCache(MODEL_CACHE_SIZE)
_importances = _BoundedCache(MODEL_CACHE_SIZE)


def active_model(*, session: Session | None = None) -> tuple[Any | None, dict[str, Any] | None]:
    """The active predictor and its version's facts, or (None, None) before any model exists.

    Loaded once per version and process (and kept among the last :data:`MODEL_CACHE_SIZE`): the
    artifact is arrays plus JSON, never a pickle.
    """
    with db.use(session) as db_session:
        row = db_session.exec(
            select(ModelVersion.id, ModelVersion.created_at, ModelVersion.n_train_runs, ModelVersion.metrics).where(
                ModelVersion.status == "active"
            )
        ).first()
        if row is None:
            return None, None
        facts = {
            "version": row.id,
            "created_at": row.created_at,
            "n_train_runs": row.n_train_runs,
            "metrics": dict(row.metrics),
        }

        def load() -> Any:  # the stored model is read only the first time this process needs it
            return _load_artifact(db_session.exec(select(ModelVersion.artifact).where(ModelVersion.id == row.id)).one())

        return _models.get_or_make((db.database_key(db_session), int(row.id)), load), facts


def newest_runs(*, session: Session | None = None) -> pd.DataFrame:
    """The newest fraction of successful runs: the held-out set the next candidate is scored on.

    No model version has trained on them (each trained on the runs older than its own held-out set).
    """
    try:
        return _split_newest(training_frame(session=session))[1]
    except NotEnoughRuns:
        return pd.DataFrame()


def calibration_curve(model: Any, *, session: Session | None = None) -> pd.DataFrame:
    """Nominal against observed coverage of the model's intervals on the newest runs.

    One row per level the model keeps calibration for (only its own level for a model saved
    before levels were kept).  Only rows the fitted model predicted count: heuristic intervals
    are guesses with no nominal level.
    """
    columns = ["nominal", "observed", "n"]
    holdout = newest_runs(session=session)
    if holdout.empty:
        return pd.DataFrame(columns=columns)
    try:
        levels = model.calibrated_levels() or [float(model.confidence)]
    except (AttributeError, ValueError):
        levels = [float(model.confidence)]
    actual = holdout["execution_time_s"].to_numpy(float)
    rows = []
    for level in levels:
        at_level = model if abs(level - float(model.confidence)) < 1e-9 else model.with_confidence(level)
        predicted = at_level.predict_frame(holdout)
        fitted = (predicted["method"] == "model").to_numpy(bool)
        if not fitted.any():
            return pd.DataFrame(columns=columns)
        observed = score(predicted.loc[fitted], actual[fitted])["coverage"]
        rows.append({"nominal": float(level), "observed": observed, "n": int(fitted.sum())})
    return pd.DataFrame(rows, columns=columns)


SUSPECT_COLUMNS = [
    "workload",
    "precision",
    "software",
    "gpu_type",
    "gpu_count",
    "n_runs",
    "measured_s_per_unit",
    "expected_s_per_unit",
    "measured_vs_expected",
]


def suspect_configurations(model: Any) -> pd.DataFrame:
    """Measured configurations the model's other GPUs contradict by more than
    ``predictor.SUSPECT_FACTOR`` (found while fitting, each with its own GPU held out), worst first."""
    rows = list(getattr(model, "suspects_", None) or [])
    frame = pd.DataFrame(rows, columns=[*SUSPECT_COLUMNS[:-1], "factor"])
    return frame.rename(columns={"factor": "measured_vs_expected"})[SUSPECT_COLUMNS]


def active_importances(*, session: Session | None = None) -> pd.DataFrame:
    """Permutation importances of the active model (computed once per version and process)."""
    with db.use(session) as db_session:
        model, facts = active_model(session=db_session)
        database = db.database_key(db_session)
    if model is None:
        return pd.DataFrame(columns=["feature", "importance", "std"])
    return cached_importances(model, int(facts["version"]), database)


def cached_importances(model: Any, version: int, database: str) -> pd.DataFrame:
    """``model.feature_importances()``, computed once per (database, version) in this process."""
    return _importances.get_or_make((database, int(version)), model.feature_importances)


if __name__ == "__main__":
    sys.exit(_child_main())
