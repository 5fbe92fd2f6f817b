"""Deciding where and how to run a job: ranking, data movement, shard plans, spot advice, the advisor.

What lives here: :mod:`.ranking` (platforms ranked for one task, the Pareto front, the
:class:`Predictor` protocol), :mod:`.movement` (the one home of data movement), :mod:`.shards`
and :mod:`.shard_solver` (split a divisible job over machines of several platforms), :mod:`.spot`
(spot or on-demand with checkpointing), :mod:`.serving` (replicas and GPUs for a target token
rate), :mod:`.values` (how the planners read numbers) and
:mod:`.advisor` (the hub the pages and the CLI call: the active model, the catalogue, the
ranking and who pays, in one answer).

May import everything below it: config, db, models, schema, errors, formatting, catalog, runs,
prediction, accounts.  Nothing below imports planning.
"""

from fedopt_core._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "fedopt_core.errors": ["PlanningError"],
        "fedopt_core.planning.movement": [
            "DEFAULT_NETWORK_SPEED_MBPS",
            "FALLBACK_NETWORK_SPEED_MBPS",
            "data_movement_s",
            "transfer_time_s",
        ],
        "fedopt_core.planning.ranking": [
            "OBJECTIVES",
            "RANKING_COLUMNS",
            "Predictor",
            "pareto_front",
            "rank_platforms",
        ],
        "fedopt_core.planning.serving": ["MAX_REPLICAS", "SERVING_COLUMNS", "concurrency_of", "serving_fleet"],
        "fedopt_core.planning.shards": ["DEFAULT_STARTUP_S", "ShardPlan", "plan_for_task", "plan_shards"],
        "fedopt_core.planning.spot": [
            "DEFAULT_RESTART_COST_S",
            "SPOT_MODEL",
            "advise_spot",
            "advise_spot_frame",
            "advice_sentence",
            "load_spot_prices",
            "preemption_rate_from_sessions",
        ],
    },
)
