"""Accounts that pay: allocations with encrypted keys and limits, usage sessions, who pays, the review.

What lives here: :mod:`.registry` (accounts, their keys and limits), :mod:`.usage` (usage
sessions and every figure derived from them), :mod:`.choice` (which account would pay for a job),
:mod:`.eligibility` (institutional e-mail checks), :mod:`.months` (calendar months in UTC),
:mod:`.fields` (how their inputs are read and refused), :mod:`.caps` (the spending caps a launch
is checked against, and budget alerts), :mod:`.reports` (the monthly usage review and what the
cost techniques would have saved), :mod:`.review_export` (the review page's charts, its CSV and the
report files) and :mod:`.review_print` (the review on paper: static charts, printable HTML, PDF).

May import: config, db, models, schema, csvfiles, errors, auth, crypto, catalog.  Nothing here
imports runs' write path, prediction, planning or cloud.
"""

from fedopt_core._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "fedopt_core.accounts.caps": ["BudgetAlert", "budget_alerts", "check_launch"],
        "fedopt_core.accounts.choice": ["AccountChoice", "choose_account", "paying_accounts"],
        "fedopt_core.accounts.eligibility": ["EmailCheck", "check_institutional_email", "university_domains"],
        "fedopt_core.accounts.fields": ["as_utc"],
        "fedopt_core.accounts.months": ["month_bounds", "month_label", "parse_month", "previous_month"],
        "fedopt_core.accounts.registry": [
            "ACCOUNT_COLUMNS",
            "STATUSES",
            "archive_account",
            "decrypted_api_key",
            "forget_unopenable_keys",
            "list_accounts",
            "masked_api_key",
            "register_academic_account",
            "rotate_secret_key",
            "set_api_key",
            "set_status",
            "update_account",
        ],
        "fedopt_core.accounts.usage": [
            "OUTCOMES",
            "SESSION_COLUMNS",
            "add_usage_session",
            "list_usage_sessions",
            "usage_in_window",
            "usage_stats",
        ],
        "fedopt_core.errors": ["AccountInputError", "UnknownAccountError"],
    },
)
