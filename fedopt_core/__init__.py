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

from fedopt_core._exports import lazy_exports

__version__ = "0.1.0"

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "fedopt_core.prediction.estimator": ["PerformancePredictor"],
        "fedopt_core.catalog.datasets": ["load_lambda_benchmarks", "load_llm_runs"],
        "fedopt_core.planning.ranking": ["rank_platforms"],
        "fedopt_core.planning.shards": ["plan_shards", "plan_for_task"],
        "fedopt_core.planning.spot": ["advise_spot"],
        "fedopt_core.runs.tracking": ["track", "record_actual_performance"],
        "fedopt_core.runs.store": ["log_run"],
        "fedopt_core.runs.csv_io": ["import_csv"],
        "fedopt_core.compat": ["AccountManager", "LambdaLabsManager"],
        "fedopt_core.cloud.lambda_cloud": ["LambdaCloudClient"],
        "fedopt_core.errors": ["FedoptInputError"],
    },
)
