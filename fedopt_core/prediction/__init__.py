"""How long a job takes on a platform: the encoding, the estimator, its calibration, and retraining.

What lives here: :mod:`.features` (the one encoding of task and platform rows), :mod:`.estimator`
(:class:`PerformancePredictor`: fit, predict with intervals, importances), the parts it is built
from (:mod:`.transfer`, :mod:`.anchors`, :mod:`.calibration`, :mod:`.heuristics`, :mod:`.stats`,
:mod:`.trees`, :mod:`.persistence`), :mod:`.training` (model versions, champion/challenger,
one retrain at a time) and :mod:`.leases` (the database lease that keeps it to one).

May import: config, db, models, schema, errors, auth, catalog (GPU facts), runs (the training
set).  Nothing here imports planning, accounts or cloud.
"""

from fedopt_core._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "fedopt_core.errors": ["ModelFormatError"],
        "fedopt_core.prediction.diagnostics": ["SUSPECT_FACTOR"],
        "fedopt_core.prediction.estimator": ["CALIBRATED_LEVELS", "PerformancePredictor"],
    },
)
