"""How long a job takes on a platform: the encoding, the estimator, its calibration, and retraining.

What lives here: :mod:`.features` (the one encoding of task and platform rows), :mod:`.estimator`
(:class:`PerformancePredictor`: fit, predict with intervals, importances), the parts it is built
from (:mod:`.transfer`, :mod:`.anchors`, :mod:`.calibration`, :mod:`.heuristics`, :mod:`.stats`,
:mod:`.trees`, :mod:`.persistence`) and :mod:`.training` (model versions, champion/challenger,
one retrain at a time).

May import: config, db, models, schema, errors, auth, catalog (GPU facts), runs (the training
set).  Nothing here imports planning, accounts or cloud.
"""

from fedopt_core.errors import ModelFormatError
from fedopt_core.prediction.diagnostics import SUSPECT_FACTOR
from fedopt_core.prediction.estimator import CALIBRATED_LEVELS, PerformancePredictor

__all__ = ["CALIBRATED_LEVELS", "SUSPECT_FACTOR", "ModelFormatError", "PerformancePredictor"]
