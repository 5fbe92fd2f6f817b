"""Accounts that pay: allocations with encrypted keys and limits, usage sessions, who pays, the review.

What lives here: :mod:`.registry` (accounts, their keys and limits), :mod:`.usage` (usage
sessions and every figure derived from them), :mod:`.choice` (which account would pay for a job),
:mod:`.eligibility` (institutional e-mail checks), :mod:`.months` (calendar months in UTC),
:mod:`.fields` (how their inputs are read and refused) and :mod:`.reports` (the monthly usage
review and what the cost techniques would have saved).

May import: config, db, models, schema, csvfiles, errors, auth, crypto, catalog.  Nothing here
imports runs' write path, prediction, planning or cloud.
"""

from fedopt_core.accounts.choice import AccountChoice, choose_account, paying_accounts
from fedopt_core.accounts.eligibility import EmailCheck, check_institutional_email, university_domains
from fedopt_core.accounts.fields import as_utc
from fedopt_core.accounts.months import month_bounds, month_label, parse_month, previous_month
from fedopt_core.accounts.registry import (
    ACCOUNT_COLUMNS,
    STATUSES,
    archive_account,
    decrypted_api_key,
    list_accounts,
    masked_api_key,
    register_academic_account,
    rotate_secret_key,
    set_api_key,
    set_status,
    update_account,
)
from fedopt_core.accounts.usage import (
    OUTCOMES,
    SESSION_COLUMNS,
    add_usage_session,
    list_usage_sessions,
    usage_in_window,
    usage_stats,
)
from fedopt_core.errors import AccountInputError, UnknownAccountError

__all__ = [
    "ACCOUNT_COLUMNS",
    "OUTCOMES",
    "SESSION_COLUMNS",
    "STATUSES",
    "AccountChoice",
    "AccountInputError",
    "EmailCheck",
    "UnknownAccountError",
    "add_usage_session",
    "archive_account",
    "as_utc",
    "check_institutional_email",
    "choose_account",
    "decrypted_api_key",
    "list_accounts",
    "list_usage_sessions",
    "masked_api_key",
    "month_bounds",
    "month_label",
    "parse_month",
    "paying_accounts",
    "previous_month",
    "register_academic_account",
    "rotate_secret_key",
    "set_api_key",
    "set_status",
    "university_domains",
    "update_account",
    "usage_in_window",
    "usage_stats",
]
