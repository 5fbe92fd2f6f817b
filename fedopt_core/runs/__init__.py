"""Actual runs: the one write path, reading them back, CSV files, job scripts, predictions to score.

What lives here: :mod:`.store` (validate, identify and store runs in batches; log one; edit;
delete), :mod:`.queries` (lists, facets, the training set), :mod:`.csv_io` (import a run CSV or
Lambda's benchmark table, export, template), :mod:`.tracking` (``track()`` and
``record_actual_performance`` for job scripts) and :mod:`.predictions` (predictions kept to be
scored against the runs logged after them).

May import: config, db, models, schema, csvfiles, errors, auth, catalog.  Nothing here imports
prediction, planning, accounts or cloud.
"""

from fedopt_core.runs.csv_io import (
    EXPORT_COLUMNS,
    FORMAT_LAMBDA_BENCHMARK,
    FORMAT_RUNS,
    MAX_IMPORT_BYTES,
    REQUIRED_COLUMNS,
    export_csv,
    import_csv,
    template_csv,
)
from fedopt_core.runs.predictions import prediction_pairs, record_predictions, weekly_accuracy
from fedopt_core.runs.queries import (
    LIST_COLUMNS,
    RunNotFoundError,
    count_runs_since,
    get_run,
    latest_run,
    list_runs,
    run_facets,
    training_frame,
)
from fedopt_core.runs.store import (
    DEFAULT_BATCH_SIZE,
    SOURCES,
    ImportAborted,
    ImportResult,
    LoggedRun,
    delete_run,
    log_run,
    store_runs,
    update_run,
)
from fedopt_core.runs.tracking import TrackedRun, record_actual_performance, track

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EXPORT_COLUMNS",
    "FORMAT_LAMBDA_BENCHMARK",
    "FORMAT_RUNS",
    "LIST_COLUMNS",
    "MAX_IMPORT_BYTES",
    "REQUIRED_COLUMNS",
    "SOURCES",
    "ImportAborted",
    "ImportResult",
    "LoggedRun",
    "RunNotFoundError",
    "TrackedRun",
    "count_runs_since",
    "delete_run",
    "export_csv",
    "get_run",
    "import_csv",
    "latest_run",
    "list_runs",
    "log_run",
    "prediction_pairs",
    "record_actual_performance",
    "record_predictions",
    "run_facets",
    "store_runs",
    "template_csv",
    "track",
    "training_frame",
    "update_run",
    "weekly_accuracy",
]
