"""Cloud providers through their real APIs: today Lambda Cloud.

What lives here: :mod:`.lambda_cloud` (the HTTP client, its typed errors and results: one
coherent concept, kept whole), :mod:`.lambda_ops` (refresh the catalogue, launch and
terminate with usage sessions, sync; every write only after the API call succeeded, a launch's
intent before it) and :mod:`.enforce` (machines past their job's upper bound, accounts past a
hard cap: warn, and terminate where agreed).

May import everything below it except planning: config, db, models, schema, errors, auth,
catalog, accounts.
"""

from fedopt_core._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "fedopt_core.cloud.lambda_cloud": ["LambdaCloudClient", "LambdaCloudError"],
    },
)
