"""fedopt core: predict GPU job times per platform, compare platforms, manage how to pay.

Importable without Streamlit; the dashboard (``fedopt_dashboard``) and the ``fedopt`` command are
thin faces over this package.  The public API, loaded on first use so that ``import fedopt_core``
stays light for a job script that only wants ``track``::

    from fedopt_core import (PerformancePredictor, load_lambda_benchmarks, rank_platforms, plan_shards,
                             track, record_actual_performance, AccountManager, LambdaCloudClient)

Everything else is reached through its package: :mod:`fedopt_core.catalog`, :mod:`~fedopt_core.runs`,
:mod:`~fedopt_core.prediction`, :mod:`~fedopt_core.planning`, :mod:`~fedopt_core.accounts`,
:mod:`~fedopt_core.cloud` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module that defines it (imported on first access, PEP 562).
_PUBLIC = {
    "PerformancePredictor": "fedopt_core.prediction.estimator",
    "load_lambda_benchmarks": "fedopt_core.catalog.datasets",
    "rank_platforms": "fedopt_core.planning.ranking",
    "plan_shards": "fedopt_core.planning.shards",
    "plan_for_task": "fedopt_core.planning.shards",
    "advise_spot": "fedopt_core.planning.spot",
    "track": "fedopt_core.runs.tracking",
    "record_actual_performance": "fedopt_core.runs.tracking",
    "log_run": "fedopt_core.runs.store",
    "import_csv": "fedopt_core.runs.csv_io",
    "AccountManager": "fedopt_core.compat",
    "LambdaLabsManager": "fedopt_core.compat",
    "LambdaCloudClient": "fedopt_core.cloud.lambda_cloud",
    "FedoptInputError": "fedopt_core.errors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'fedopt_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
