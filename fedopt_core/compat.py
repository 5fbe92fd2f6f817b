"""The seed's APIs, kept for scripts written against them: one thin layer over the real homes.

* ``predict_execution_time(predictor, task_info, platform_info)`` and
  ``get_optimal_platform(predictor, task_info, platforms)``: one prediction, or the fastest of a
  list of platform dicts, with the seed's ``prediction_info`` dict;
* :class:`AccountManager` (alias ``LambdaLabsManager``): the accounts API bound to one database,
  with the seed's ``get_available_account`` and ``get_academic_access_techniques`` shapes.

New code calls :mod:`fedopt_core.planning`, :mod:`fedopt_core.accounts` and
:mod:`fedopt_core.catalog` directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlmodel import Session

from fedopt_core.accounts.choice import AccountChoice, choose_account, paying_accounts
from fedopt_core.accounts.registry import (
    archive_account,
    decrypted_api_key,
    list_accounts,
    masked_api_key,
    register_academic_account,
    rotate_secret_key,
    set_api_key,
    set_status,
    update_account,
)
from fedopt_core.accounts.usage import add_usage_session, list_usage_sessions, usage_stats
from fedopt_core.catalog.techniques import list_techniques
from fedopt_core.db import redact_url, session_scope
from fedopt_core.errors import ValidationError
from fedopt_core.planning.ranking import Predictor, rank_platforms
from fedopt_core.prediction.features import TRANSFER_FEATURE_NAMES

__all__ = [
    "AccountManager",
    "LambdaLabsManager",
    "get_academic_access_techniques",
    "get_available_account",
    "get_optimal_platform",
    "predict_execution_time",
    "prediction_info",
]


# --------------------------------------------------------------------------- predictions


def predict_execution_time(
    predictor: Predictor, task_info: Mapping[str, Any], platform_info: Mapping[str, Any]
) -> tuple[float, dict[str, Any]]:
    """One prediction: (seconds, info) with ``predicted_time_seconds``, ``confidence_interval``
    (lower, upper, confidence), ``model_version``, ``features_used``, ``method`` and more."""
    row = _one_row(task_info, platform_info)
    pred = predictor.predict_frame(row).iloc[0]
    return float(pred["predicted_time_s"]), prediction_info(predictor, pred)


def prediction_info(predictor: Predictor, pred: pd.Series) -> dict[str, Any]:
    """The seed's description of one prediction row."""
    warning = pred["warning"]
    return {
        "predicted_time_seconds": float(pred["predicted_time_s"]),
        "confidence_interval": {
            "lower": float(pred["lower_s"]),
            "upper": float(pred["upper_s"]),
            "confidence": float(getattr(predictor, "confidence", math.nan)),
        },
        "model_version": getattr(predictor, "model_version_", "unfitted"),
        "features_used": list(getattr(predictor, "feature_names_", TRANSFER_FEATURE_NAMES)),
        "method": str(pred["method"]),
        "basis": str(pred["basis"]),
        "n_anchor_runs": int(pred["n_anchor_runs"]),
        "warning": None if warning is None or (isinstance(warning, float) and np.isnan(warning)) else str(warning),
    }


def get_optimal_platform(
    predictor: Predictor, task_info: Mapping[str, Any], available_platforms: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The fastest platform for a task, with every platform's prediction (fastest first)."""
    if not available_platforms:
        return {"status": "error", "message": "No platforms available"}
    platforms = pd.DataFrame([dict(p) for p in available_platforms])
    _check_finite(task_info, "task")
    for p in available_platforms:
        _check_finite(p, "platform")
    ranked = rank_platforms(dict(task_info), platforms, objective="time", predictor=predictor)
    all_predictions = []
    for _, r in ranked.iterrows():  # output assembly for a short list, not the hot path
        pos = int(r["input_position"])
        all_predictions.append(
            {
                "platform": dict(available_platforms[pos]),
                "predicted_time": float(r["predicted_time_s"]),
                "prediction_info": prediction_info(predictor, r),
            }
        )
    best = all_predictions[0]
    return {
        "status": "success",
        "optimal_platform": best["platform"],
        "predicted_time": best["predicted_time"],
        "prediction_info": best["prediction_info"],
        "all_predictions": all_predictions,
    }


def _check_finite(info: Mapping[str, Any], what: str) -> None:
    for key, value in info.items():
        if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
            raise ValidationError(str(key), f"must be a finite number (got {value!r} in the {what})")


def _one_row(task_info: Mapping[str, Any], platform_info: Mapping[str, Any]) -> pd.DataFrame:
    if not isinstance(task_info, Mapping) or not isinstance(platform_info, Mapping):
        raise TypeError("task_info and platform_info must be dicts")
    _check_finite(task_info, "task")
    _check_finite(platform_info, "platform")
    return pd.DataFrame([{**dict(task_info), **dict(platform_info)}])


# --------------------------------------------------------------------------- accounts


def get_available_account(
    requirements: Mapping[str, Any] | None = None, *, session: Session | None = None
) -> dict[str, Any] | None:
    """Seed-compatible: the chosen account as a dict (with ``reason``), or None when none can pay.

    Call :func:`choose_account` to get the reason when none can.
    """
    choice = choose_account(requirements, session=session)
    return choice.as_dict() if choice.ok else None


def get_academic_access_techniques(*, session: Session | None = None) -> dict[str, list[dict[str, Any]]]:
    """The techniques catalogue in the seed's shape: access techniques and resource optimisations."""
    frame = list_techniques(session=session)

    def record(row: Mapping[str, Any], with_savings: bool) -> dict[str, Any]:
        item = {
            "name": row["name"],
            "description": row["description"],
            "effectiveness": row["effectiveness"],
            "platforms": list(row["platforms"]),
            "source_url": row["source_url"],
        }
        if with_savings:
            pct = row["savings_max_pct"]
            has = pct is not None and not pd.isna(pct)
            item["savings"] = f"up to {pct:.0f}%" if has else None
            item["savings_max_pct"] = float(pct) if has else None
        return item

    return {
        "techniques": [record(r, False) for r in frame[frame["kind"] == "access"].to_dict("records")],
        "resource_optimization": [record(r, True) for r in frame[frame["kind"] == "optimisation"].to_dict("records")],
    }


class AccountManager:
    """The Python API over one database (default: the app's).  ``LambdaLabsManager`` is an alias."""

    def __init__(self, database_url: str | None = None) -> None:
        self.database_url = database_url

    def _call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``function`` in one session on this manager's database (the configured one by default)."""
        with session_scope(self.database_url) as session:
            return function(*args, session=session, **kwargs)

    def __repr__(self) -> str:
        return f"AccountManager(database_url={redact_url(self.database_url) if self.database_url else None!r})"

    def register_academic_account(
        self, username: str, api_key: str | None, institution: str | None, email: str | None, **kwargs: Any
    ) -> bool:
        return self._call(register_academic_account, username, api_key, institution, email, **kwargs)

    def update_account(self, username: str, **changes: Any) -> None:
        self._call(update_account, username, **changes)

    def list_accounts(self, *, include_archived: bool = False, month: str | date | None = None) -> pd.DataFrame:
        return self._call(list_accounts, include_archived=include_archived, month=month)

    def archive(self, username: str) -> None:
        self._call(archive_account, username)

    def set_status(self, username: str, status: str) -> None:
        self._call(set_status, username, status)

    def set_api_key(self, username: str, api_key: str) -> str:
        return self._call(set_api_key, username, api_key)

    def rotate_key(self, new_key: str | bytes | None = None) -> str:
        """Re-encrypt every stored API key with a new secret key."""
        return self._call(rotate_secret_key, new_key)

    def masked_api_key(self, username: str) -> str | None:
        return self._call(masked_api_key, username)

    def decrypted_api_key(self, username: str) -> str | None:
        return self._call(decrypted_api_key, username)

    def add_usage_session(
        self,
        username: str,
        platform: str,
        started_at: datetime | str,
        ended_at: datetime | str | None = None,
        cost_usd: float | None = None,
        success: bool = True,
        source: str = "manual",
        **kwargs: Any,
    ) -> int:
        return self._call(
            add_usage_session, username, platform, started_at, ended_at, cost_usd, success, source, **kwargs
        )

    def list_usage_sessions(self, *, month: str | date | None = None, username: str | None = None) -> pd.DataFrame:
        return self._call(list_usage_sessions, month=month, username=username)

    def usage_stats(self, username: str, month: str | date | None = None) -> dict[str, Any]:
        return self._call(usage_stats, username, month)

    def choose_account(self, requirements: Mapping[str, Any] | None = None) -> AccountChoice:
        return self._call(choose_account, requirements)

    def get_available_account(self, requirements: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        return self._call(get_available_account, requirements)

    def paying_accounts(self, jobs: pd.DataFrame) -> pd.DataFrame:
        return self._call(paying_accounts, jobs)

    def get_academic_access_techniques(self) -> dict[str, list[dict[str, Any]]]:
        return self._call(get_academic_access_techniques)


#: The seed's name for the account manager.
LambdaLabsManager = AccountManager
