"""Actual runs: the one write path, reading them back, CSV files, job scripts, predictions to score.

What lives here: :mod:`.store` (validate, identify and store runs in batches; log one; edit;
delete), :mod:`.queries` (lists, facets, the training set), :mod:`.csv_io` (import a run CSV or
Lambda's benchmark table, export, template), :mod:`.jobs` (the job a person describes, as task
fields: one builder and one set of defaults for every face), :mod:`.tracking` (``track()`` and
``record_actual_performance`` for job scripts) and :mod:`.predictions` (predictions kept to be
scored against the runs logged after them).

May import: config, db, models, schema, csvfiles, errors, auth, catalog.  Nothing here imports
prediction, planning, accounts or cloud.
"""

from fedopt_core._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "fedopt_core.runs.csv_io": [
            "EXPORT_COLUMNS",
            "FORMAT_LAMBDA_BENCHMARK",
            "FORMAT_RUNS",
            "MAX_IMPORT_BYTES",
            "REQUIRED_COLUMNS",
            "export_csv",
            "import_csv",
            "template_csv",
        ],
        "fedopt_core.runs.jobs": ["DEFAULT_WORK_UNITS", "implied_task_type", "job_task"],
        "fedopt_core.runs.predictions": ["prediction_pairs", "record_predictions", "weekly_accuracy"],
        "fedopt_core.runs.queries": [
            "LIST_COLUMNS",
            "RunNotFoundError",
            "count_runs_since",
            "get_run",
            "latest_run",
            "list_runs",
            "run_facets",
            "training_frame",
        ],
        "fedopt_core.runs.store": [
            "DEFAULT_BATCH_SIZE",
            "SOURCES",
            "ImportAborted",
            "ImportResult",
            "LoggedRun",
            "delete_run",
            "log_run",
            "store_runs",
            "update_run",
        ],
        "fedopt_core.runs.tracking": ["TrackedRun", "record_actual_performance", "track"],
    },
)
