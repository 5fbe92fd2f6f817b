"""Accounts, encrypted keys, usage sessions, statistics by month and the choice of the paying account."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func
from sqlmodel import select

from fedopt_core import accounts, auth, compat, crypto
from fedopt_core.db import session_scope
from fedopt_core.models import Account, AuditEvent, Platform, PlatformPrice, UsageSession, utcnow

UTC = UTC


@pytest.fixture(autouse=True)
def _no_outer_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEDOPT_SECRET_KEY", raising=False)


def _count(model) -> int:
    with session_scope() as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def _this_month_start() -> datetime:
    start, _ = accounts.month_bounds()
    return start


# --------------------------------------------------------------------------- registration


def test_register_creates_then_updates_without_duplicating(loaded_db: str) -> None:
    assert (
        accounts.register_academic_account(
            "grant-a", "secret_first_key_0001", "Uni A", "pi@uni-a.edu", monthly_quota_hours=100, project="vision"
        )
        is True
    )
    assert accounts.register_academic_account("grant-a", None, "Uni A (renamed)", None, monthly_budget_usd=250) is False
    frame = accounts.list_accounts()
    assert frame["username"].tolist() == ["grant-a"]
    row = frame.iloc[0]
    assert row["institution"] == "Uni A (renamed)"
    assert row["monthly_quota_hours"] == 100  # not given on update: kept
    assert row["monthly_budget_usd"] == 250
    assert row["email"] == "pi@uni-a.edu" and row["project"] == "vision"
    assert row["api_key"] == "••••0001"
    assert _count(Account) == 1


def test_update_account_can_clear_a_limit(loaded_db: str) -> None:
    accounts.register_academic_account("course", None, None, None, monthly_quota_hours=40)
    accounts.update_account("course", monthly_quota_hours=None, notes="now unlimited")
    row = accounts.list_accounts().iloc[0]
    assert pd.isna(row["monthly_quota_hours"]) and row["notes"] == "now unlimited"


def test_an_account_without_quota_or_budget_has_no_limit(loaded_db: str) -> None:
    accounts.register_academic_account("free", None, None, None)
    start = _this_month_start()
    accounts.add_usage_session("free", "gpu_1x_a10", start, hours=500)
    choice = accounts.choose_account({"expected_hours": 10_000, "expected_cost_usd": 1e6})
    assert choice.username == "free" and "no monthly limit" in choice.reason


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"email": "two@@at.edu"}, "email"),
        ({"username": "   "}, "username"),
        ({"monthly_quota_hours": -1}, "monthly_quota_hours"),
        ({"monthly_budget_usd": -0.01}, "monthly_budget_usd"),
        ({"monthly_quota_hours": "lots"}, "monthly_quota_hours"),
        ({"ends_on": "next spring"}, "ends_on"),
        ({"status": "frozen"}, "status"),
        ({"api_key": "has space_in_it_1234"}, "api_key"),
        ({"provider": ""}, "provider"),
    ],
)
def test_bad_account_input_names_the_field_and_writes_nothing(loaded_db: str, kwargs: dict, field: str) -> None:
    args = {"username": "lab", "api_key": "secret_valid_key_9999", "institution": "Uni", "email": "a@uni.edu"} | kwargs
    positional = [args.pop(k) for k in ("username", "api_key", "institution", "email")]
    with pytest.raises(accounts.AccountInputError) as info:
        accounts.register_academic_account(*positional, **args)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)
    assert "has space_in_it" not in str(info.value)  # a rejected key is never echoed
    assert _count(Account) == 0 and _count(AuditEvent) == 0


@pytest.mark.parametrize(
    ("email", "verified", "in_reason"),
    [
        ("pi@cs.stanford.edu", True, ".edu"),
        ("student@ox.ac.uk", True, ".ac.uk"),
        ("someone@unimelb.edu.au", True, ".edu.au"),
        ("r@u-tokyo.ac.jp", True, ".ac.jp"),
        ("postdoc@student.ethz.ch", True, "ETH Zurich"),
        ("me@gmail.com", False, "public mail service"),
        ("boss@startup.io", False, "startup.io"),
        (None, False, "no e-mail"),
    ],
)
def test_institutional_email_check(email: str | None, verified: bool, in_reason: str) -> None:
    check = accounts.check_institutional_email(email)
    assert check.verified is verified
    assert in_reason in check.reason
    assert check.label == ("domain recognised" if verified else "domain not recognised")


def test_email_check_is_stored_and_shown_without_locking_out(loaded_db: str) -> None:
    accounts.register_academic_account("hobby", "secret_hobby_key_4321", None, "me@gmail.com")
    row = accounts.list_accounts().iloc[0]
    assert row["eligibility"] == "domain not recognised" and "public mail" in row["email_check_reason"]
    assert row["status"] == "active"  # informs only
    assert accounts.choose_account().username == "hobby"


# --------------------------------------------------------------------------- secrets


def test_api_key_is_encrypted_at_rest_and_never_leaks(
    loaded_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = "secret_LEAKCHECK_7f3a9c2e11d04b88"
    caplog.set_level(logging.DEBUG)
    accounts.register_academic_account("leaky", key, "Uni", "x@uni.edu", notes="the key is elsewhere")
    replacement = "secret_REPLACED_0a1b2c3d4e5f6789"
    assert accounts.set_api_key("leaky", replacement) == "••••6789"
    assert accounts.decrypted_api_key("leaky") == replacement
    frame = accounts.list_accounts(include_archived=True)
    raw_files = [p for p in tmp_path.iterdir() if p.name.startswith("fedopt.db")]
    assert any(p.name.endswith("-wal") for p in raw_files), "expected a WAL file to check as well"
    for path in raw_files:
        data = path.read_bytes()
        for secret in (key, replacement):
            assert secret.encode() not in data, f"{secret} found in {path.name}"
            assert secret.encode("utf-16-le") not in data
    with session_scope() as session:
        stored = session.exec(select(Account)).one()
        token = stored.api_key_encrypted
        assert replacement not in repr(stored)
        events = session.exec(select(AuditEvent)).all()
    key_file = tmp_path / crypto.KEY_FILE_NAME
    assert Fernet(key_file.read_bytes().strip()).decrypt(token).decode() == replacement
    assert not any(s in json.dumps([e.details for e in events]) for s in (key, replacement))
    assert not any(s in frame.to_csv() for s in (key, replacement))
    assert not any(s in caplog.text for s in (key, replacement))
    assert frame.iloc[0]["api_key"] == "••••6789"
    assert accounts.masked_api_key("leaky") == "••••6789"
    assert key not in repr(compat.AccountManager()) and replacement not in repr(compat.AccountManager())


def test_rotating_the_key_file_re_encrypts_every_key(loaded_db: str, tmp_path: Path) -> None:
    accounts.register_academic_account("one", "secret_one_1111111111", None, None)
    accounts.register_academic_account("two", "secret_two_2222222222", None, None)
    accounts.register_academic_account("nokey", None, None, None)
    old_key = (tmp_path / crypto.KEY_FILE_NAME).read_bytes().strip()
    with session_scope() as session:
        before = {a.username: a.api_key_encrypted for a in session.exec(select(Account)).all()}
    message = compat.AccountManager().rotate_key()
    assert "re-encrypted 2 API key(s)" in message
    with session_scope() as session:
        after = {a.username: a.api_key_encrypted for a in session.exec(select(Account)).all()}
    new_key = (tmp_path / crypto.KEY_FILE_NAME).read_bytes().strip()
    assert new_key != old_key and after["nokey"] is None
    for name, plain in [("one", "secret_one_1111111111"), ("two", "secret_two_2222222222")]:
        assert after[name] != before[name]
        assert Fernet(new_key).decrypt(after[name]).decode() == plain
        assert accounts.decrypted_api_key(name) == plain
    assert not (tmp_path / crypto.NEXT_KEY_FILE_NAME).exists()


def test_rotating_an_environment_key(loaded_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("FEDOPT_SECRET_KEY", old)
    accounts.register_academic_account("env", "secret_env_key_abcdef", None, None)
    assert "FEDOPT_SECRET_KEY" in accounts.rotate_secret_key(new)
    monkeypatch.setenv("FEDOPT_SECRET_KEY", new)
    assert accounts.decrypted_api_key("env") == "secret_env_key_abcdef"
    monkeypatch.setenv("FEDOPT_SECRET_KEY", old)
    with pytest.raises(crypto.DecryptionError):
        accounts.decrypted_api_key("env")


def test_a_lost_key_file_refuses_new_keys_until_the_old_key_is_back_or_the_locked_keys_are_forgotten(
    loaded_db: str, tmp_path: Path
) -> None:
    accounts.register_academic_account("one", "secret_one_1111111111", None, None)
    accounts.register_academic_account("two", None, None, None)
    key_file = tmp_path / crypto.KEY_FILE_NAME
    old_key = key_file.read_bytes()
    key_file.unlink()  # deleted by mistake: the next use would make a new key silently
    with pytest.raises(crypto.SecretKeyError, match="do not open") as info:
        accounts.set_api_key("two", "secret_two_2222222222")
    assert "forget-keys" in str(info.value) and "secret_two" not in str(info.value)
    with pytest.raises(crypto.SecretKeyError, match="do not open"):
        accounts.register_academic_account("three", "secret_three_333333333", None, None)
    assert accounts.masked_api_key("two") is None and "three" not in accounts.list_accounts()["username"].tolist()
    key_file.write_bytes(old_key)  # the old key back: everything opens, new keys are accepted
    accounts.set_api_key("two", "secret_two_2222222222")
    assert accounts.decrypted_api_key("one") == "secret_one_1111111111"
    key_file.unlink()  # lost for good: forget what it locked, then keys can be entered again
    with pytest.raises(crypto.SecretKeyError):
        accounts.set_api_key("two", "secret_two_2222222222")
    assert sorted(accounts.forget_unopenable_keys()) == ["one", "two"]
    accounts.set_api_key("one", "secret_one_new_44444444")
    assert accounts.decrypted_api_key("one") == "secret_one_new_44444444"
    assert "re-encrypted 1 API key(s)" in accounts.rotate_secret_key()  # and rotation works again
    assert accounts.decrypted_api_key("one") == "secret_one_new_44444444"


def test_a_changed_environment_key_is_refused_the_same_way(loaded_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("FEDOPT_SECRET_KEY", first)
    accounts.register_academic_account("env", "secret_env_key_abcdef", None, None)
    monkeypatch.setenv("FEDOPT_SECRET_KEY", second)
    with pytest.raises(crypto.SecretKeyError, match="FEDOPT_SECRET_KEY"):
        accounts.register_academic_account("env2", "secret_env2_key_abcdef", None, None)
    monkeypatch.setenv("FEDOPT_SECRET_KEY", first)
    accounts.register_academic_account("env2", "secret_env2_key_abcdef", None, None)
    assert accounts.decrypted_api_key("env2") == "secret_env2_key_abcdef"


# --------------------------------------------------------------------------- statuses


def test_archiving_keeps_the_history(loaded_db: str) -> None:
    accounts.register_academic_account("old-grant", None, None, None, monthly_quota_hours=10)
    start = _this_month_start()
    accounts.add_usage_session("old-grant", "gpu_1x_a10", start + timedelta(hours=1), hours=3)
    accounts.archive_account("old-grant")
    assert accounts.list_accounts().empty
    everything = accounts.list_accounts(include_archived=True)
    assert everything["status"].tolist() == ["archived"]
    assert accounts.usage_stats("old-grant")["monthly_hours"] == pytest.approx(3.0)
    assert accounts.list_usage_sessions()["username"].tolist() == ["old-grant"]
    assert accounts.choose_account().username is None


def test_status_values_and_unknown_accounts(loaded_db: str) -> None:
    accounts.register_academic_account("s", None, None, None)
    accounts.set_status("s", "suspended")
    assert accounts.list_accounts().iloc[0]["status"] == "suspended"
    with pytest.raises(accounts.AccountInputError) as info:
        accounts.set_status("s", "paused")
    assert info.value.field == "status"
    with pytest.raises(accounts.UnknownAccountError) as info:
        accounts.archive_account("ghost")
    assert info.value.field == "username" and "ghost" in str(info.value)


def test_an_account_past_its_end_date_shows_as_expired(loaded_db: str) -> None:
    accounts.register_academic_account("ended", None, None, None, ends_on=date.today() - timedelta(days=2))
    row = accounts.list_accounts().iloc[0]
    assert row["status"] == "expired" and row["stored_status"] == "active"


def test_writes_check_the_acting_users_role(loaded_db: str) -> None:
    accounts.register_academic_account("lab", None, None, None)
    start = _this_month_start()
    with auth.acting_as(auth.Actor(name="v", role="viewer")), pytest.raises(auth.PermissionDenied):
        accounts.add_usage_session("lab", "gpu_1x_a10", start, hours=1)
    with auth.acting_as(auth.Actor(name="m", role="member")):
        accounts.add_usage_session("lab", "gpu_1x_a10", start, hours=1)
        with pytest.raises(auth.PermissionDenied):
            accounts.register_academic_account("other", None, None, None)
        with pytest.raises(auth.PermissionDenied):
            accounts.decrypted_api_key("lab")
    assert _count(UsageSession) == 1 and _count(Account) == 1


# --------------------------------------------------------------------------- usage sessions


def test_session_cost_uses_the_price_at_the_time(loaded_db: str) -> None:
    accounts.register_academic_account("p", None, None, None)
    t0 = datetime(2026, 6, 1, tzinfo=UTC)
    with session_scope() as session:
        platform = session.exec(select(Platform).where(Platform.instance_type == "gpu_1x_a10")).one()
        for row in session.exec(select(PlatformPrice).where(PlatformPrice.platform_id == platform.id)).all():
            session.delete(row)
        session.add(PlatformPrice(platform_id=platform.id, observed_at=t0, price_per_hour_usd=1.0))
        session.add(PlatformPrice(platform_id=platform.id, observed_at=t0 + timedelta(days=30), price_per_hour_usd=2.0))
    early = accounts.add_usage_session("p", "gpu_1x_a10", t0 + timedelta(days=3), hours=4)
    late = accounts.add_usage_session("p", "gpu_1x_a10", t0 + timedelta(days=40), hours=4)
    before_any = accounts.add_usage_session("p", "gpu_1x_a10", t0 - timedelta(days=40), hours=4)
    given = accounts.add_usage_session("p", "gpu_1x_a10", t0 + timedelta(days=3), hours=4, cost_usd=0.5)
    with session_scope() as session:
        cost = {s.id: s.cost_usd for s in session.exec(select(UsageSession)).all()}
    assert cost[early] == pytest.approx(4.0)
    assert cost[late] == pytest.approx(8.0)
    assert cost[before_any] == pytest.approx(4.0)  # earlier than every observation: the earliest price
    assert cost[given] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"username": "ghost"}, "username"),
        ({"username": ""}, "username"),
        ({"hours": -2}, "hours"),
        ({"hours": None, "ended_at": "2026-11-02T09:00+00:00"}, "ended_at"),  # before its start
        ({"cost_usd": -1}, "cost_usd"),
        ({"started_at": "2026-11-02T10:00"}, "started_at"),  # no time zone
        ({"started_at": "yesterday-ish"}, "started_at"),
        ({"platform": "no-such-box"}, "platform"),  # no catalogue price and no cost
        ({"platform": ""}, "platform"),
        ({"source": "guess"}, "source"),
        ({"hours": 1, "ended_at": "2026-11-02T12:00+00:00"}, "hours"),  # both
        ({"run_id": 999}, "run_id"),  # no such run
        ({"success": "yes"}, "success"),
    ],
)
def test_bad_session_input_names_the_field_and_writes_nothing(loaded_db: str, change: dict, field: str) -> None:
    accounts.register_academic_account("lab", None, None, None)
    args = {"username": "lab", "platform": "gpu_1x_a10", "started_at": "2026-11-02T10:00+00:00", "hours": 2} | change
    with pytest.raises(accounts.AccountInputError) as info:
        accounts.add_usage_session(**args)
    assert info.value.field == field
    assert _count(UsageSession) == 0


def test_a_running_session_counts_up_to_now(loaded_db: str) -> None:
    accounts.register_academic_account("r", None, None, None)
    session_id = accounts.add_usage_session("r", "gpu_1x_a10", utcnow() - timedelta(hours=2))
    with session_scope() as session:
        row = session.get(UsageSession, session_id)
        assert row.outcome == "running" and row.ended_at is None and row.cost_usd is None
    stats = accounts.usage_stats("r")
    assert stats["running_sessions"] == 1
    assert stats["total_hours"] == pytest.approx(2.0, abs=0.05)
    assert stats["total_cost_usd"] == pytest.approx(2.0 * 1.29, abs=0.1)


def test_concurrent_recording_loses_nothing(loaded_db: str) -> None:
    """8 threads x 250 sessions on one account, on the real SQLite file: the totals are exact."""
    accounts.register_academic_account("busy", None, None, None)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    errors: list[BaseException] = []
    ids: list[int] = []
    ids_lock = threading.Lock()
    gate = threading.Barrier(8)

    def record(thread: int) -> None:
        try:
            gate.wait()
            for i in range(250):
                session_id = accounts.add_usage_session(
                    "busy",
                    "gpu_1x_a10",
                    start + timedelta(hours=i),
                    hours=0.25 * (thread + 1),
                    success=thread % 2 == 0,
                    person=f"p{thread}",
                )
                with ids_lock:
                    ids.append(session_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=record, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert len(set(ids)) == 2000
    stats = accounts.usage_stats("busy", "2026-10")
    assert stats["monthly_instances_launched"] == 2000
    assert stats["instances_launched"] == 2000
    assert stats["monthly_hours"] == 250 * 0.25 * sum(range(1, 9))  # 2250.0, exact in binary
    assert stats["successful_sessions"] == 1000 and stats["failed_sessions"] == 1000
    per_person = accounts.list_usage_sessions(month="2026-10").groupby("person").size()
    assert per_person.to_dict() == {f"p{t}": 250 for t in range(8)}


def test_a_session_crossing_the_month_end_is_split(loaded_db: str) -> None:
    accounts.register_academic_account("night", None, None, None)
    accounts.add_usage_session(
        "night", "gpu_1x_a10", "2026-10-31T22:00:00+00:00", "2026-11-01T03:00:00+00:00", cost_usd=50
    )
    october = accounts.usage_stats("night", "2026-10")
    november = accounts.usage_stats("night", "2026-11")
    assert october["monthly_hours"] == pytest.approx(2.0) and november["monthly_hours"] == pytest.approx(3.0)
    assert october["monthly_cost_usd"] == pytest.approx(20.0) and november["monthly_cost_usd"] == pytest.approx(30.0)
    assert october["monthly_instances_launched"] == 1 and november["monthly_instances_launched"] == 0
    assert october["total_hours"] == november["total_hours"] == pytest.approx(5.0)
    assert accounts.usage_stats("night", "2026-12")["monthly_hours"] == 0


def test_a_session_crossing_the_year_end_is_split(loaded_db: str) -> None:
    accounts.register_academic_account("ny", None, None, None)
    accounts.add_usage_session("ny", "gpu_1x_a10", "2026-12-31T23:00:00+00:00", hours=3)
    assert accounts.usage_stats("ny", "2026-12")["monthly_hours"] == pytest.approx(1.0)
    assert accounts.usage_stats("ny", date(2027, 1, 15))["monthly_hours"] == pytest.approx(2.0)


@pytest.mark.parametrize(("text", "start"), [("2026-11", date(2026, 11, 1)), ("2026-1", date(2026, 1, 1))])
def test_parse_month(text: str, start: date) -> None:
    assert accounts.parse_month(text) == start


@pytest.mark.parametrize("text", ["2026-13", "Nov 2026", "2026-00", ""])
def test_bad_month_names_the_field(text: str) -> None:
    with pytest.raises(accounts.AccountInputError) as info:
        accounts.parse_month(text)
    assert info.value.field == "month"


# --------------------------------------------------------------------------- choosing an account


def _use(username: str, hours: float, cost: float | None = None) -> None:
    accounts.add_usage_session(
        username, "gpu_1x_a10", _this_month_start() + timedelta(minutes=30), hours=hours, cost_usd=cost
    )


def test_choice_by_hour_headroom(loaded_db: str) -> None:
    accounts.register_academic_account("small", None, None, None, monthly_quota_hours=100)
    accounts.register_academic_account("big", None, None, None, monthly_quota_hours=1000)
    _use("small", 90)  # 10 h left
    _use("big", 600)  # 400 h left, 40%
    choice = accounts.choose_account({"expected_hours": 20})
    assert choice.username == "big"
    assert choice.hours_left == pytest.approx(400) and choice.headroom_after_job_pct == pytest.approx(38.0)
    small = choice.candidates.set_index("username").loc["small"]
    assert not small["can_pay"] and "10.0 h left" in small["reason"]
    # Both can pay 5 h; 'big' keeps 39.5 % after it, 'small' 5 %.
    assert accounts.choose_account({"expected_hours": 5}).username == "big"
    assert compat.get_available_account({"expected_hours": 5})["username"] == "big"


def test_choice_prefers_the_larger_share_left(loaded_db: str) -> None:
    accounts.register_academic_account("a", None, None, None, monthly_quota_hours=1000)
    accounts.register_academic_account("b", None, None, None, monthly_quota_hours=50)
    _use("a", 900)  # 10 % left
    _use("b", 10)  # 80 % left
    choice = accounts.choose_account({"expected_hours": 5})
    assert choice.username == "b" and "the most headroom of 2 accounts" in choice.reason


def test_choice_by_budget(loaded_db: str) -> None:
    accounts.register_academic_account("cheap", None, None, None, monthly_budget_usd=200)
    accounts.register_academic_account("rich", None, None, None, monthly_budget_usd=1000)
    _use("rich", 1, cost=600)  # $400 left
    choice = accounts.choose_account({"expected_cost_usd": 300})
    assert choice.username == "rich" and choice.budget_left_usd == pytest.approx(400)
    none = accounts.choose_account({"expected_cost_usd": 450})
    assert none.username is None
    assert "cheap: $200.00 left this month, the job needs $450.00" in none.reason
    assert compat.get_available_account({"expected_cost_usd": 450}) is None
    unpriced = accounts.choose_account({"expected_hours": 3})
    assert unpriced.username == "cheap" and "cost not given" in unpriced.reason


def test_choice_prices_hours_on_a_platform(loaded_db: str) -> None:
    accounts.register_academic_account("b", None, None, None, monthly_budget_usd=20)
    choice = accounts.choose_account({"expected_hours": 10, "platform": "gpu_1x_a10"})
    assert choice.expected_cost_usd == pytest.approx(12.9) and choice.username == "b"
    assert accounts.choose_account({"expected_hours": 20, "platform": "gpu_1x_a10"}).username is None


def test_expired_archived_suspended_and_other_providers_are_excluded(loaded_db: str) -> None:
    accounts.register_academic_account("expired", None, None, None, ends_on=date.today() - timedelta(days=1))
    accounts.register_academic_account("archived", None, None, None)
    accounts.register_academic_account("suspended", None, None, None)
    accounts.register_academic_account("aws-grant", None, None, None, provider="aws")
    accounts.register_academic_account("tight", None, None, None, monthly_quota_hours=10)
    accounts.archive_account("archived")
    accounts.set_status("suspended", "suspended")
    choice = accounts.choose_account({"provider": "lambda", "expected_hours": 5})
    assert choice.username == "tight"
    reasons = choice.candidates.set_index("username")["reason"]
    assert "expired on" in reasons["expired"]
    assert reasons["suspended"] == "status is suspended"
    assert "provider is aws" in reasons["aws-grant"]
    assert "archived" not in reasons.index
    assert accounts.choose_account({"provider": "aws"}).username == "aws-grant"
    none = accounts.choose_account({"provider": "lambda", "expected_hours": 50})
    assert none.username is None and "tight: 10.0 h left this month, the job needs 50.0 h" in none.reason


def test_no_accounts_at_all(loaded_db: str) -> None:
    choice = accounts.choose_account({"expected_hours": 1})
    assert choice.username is None and "no accounts" in choice.reason


@pytest.mark.parametrize(
    ("requirements", "field"),
    [
        ({"expected_hours": -1}, "expected_hours"),
        ({"expected_cost_usd": "a lot"}, "expected_cost_usd"),
        ({"gpu": "H100"}, "requirements"),
    ],
)
def test_bad_requirements_name_the_field(loaded_db: str, requirements: dict, field: str) -> None:
    with pytest.raises(accounts.AccountInputError) as info:
        accounts.choose_account(requirements)
    assert info.value.field == field


def test_paying_accounts_matches_choose_account_row_by_row(loaded_db: str) -> None:
    accounts.register_academic_account("h", None, None, None, monthly_quota_hours=100)
    accounts.register_academic_account("usd", None, None, None, monthly_budget_usd=50)
    accounts.register_academic_account("gcp", None, None, None, provider="gcp", monthly_quota_hours=5)
    _use("h", 70)
    jobs = pd.DataFrame(
        {
            "provider": ["lambda", "lambda", "lambda", "gcp", None],
            "expected_hours": [10, 40, 10, 6, 1],
            "expected_cost_usd": [10, 10, 60, 1, None],
        }
    )
    out = accounts.paying_accounts(jobs)
    expected = []
    for row in jobs.to_dict("records"):
        req = {k: v for k, v in row.items() if v is not None and not pd.isna(v)}
        expected.append(accounts.choose_account(req).username)
    assert out["paying_account"].tolist() == expected
    assert expected[3] is None and expected[0] is not None
    # the real reason: which account comes closest and why, or that there is none on that provider
    assert out.loc[3, "paying_reason"] == "no account on gcp has room: gcp: 5.0 h left this month, the job needs 6.0 h"
    nebius = accounts.paying_accounts(pd.DataFrame({"provider": ["nebius"], "expected_hours": [1.0]}))
    assert nebius.loc[0, "paying_account"] is None and nebius.loc[0, "paying_reason"] == "no active account on nebius"


# --------------------------------------------------------------------------- CLI


def _cli(*args: str, home: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = (
        os.environ | {"FEDOPT_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'fedopt.db'}"} | (env or {})
    )
    environment.pop("FEDOPT_SECRET_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "fedopt_core.cli", *args], capture_output=True, text=True, env=environment, timeout=120
    )


def test_cli_accounts_add_list_archive_never_print_the_key(loaded_db: str, tmp_path: Path) -> None:
    key = "secret_CLI_0123456789abcdef"
    key_file = tmp_path / "key.txt"
    key_file.write_text(key + "\n")
    assert _cli("setup", home=tmp_path).returncode == 0  # who sets fedopt up holds its key: the CLI's admin
    added = _cli(
        "accounts",
        "add",
        "cli-grant",
        "--email",
        "a@b.ac.uk",
        "--quota-hours",
        "20",
        "--api-key-file",
        str(key_file),
        "--json",
        home=tmp_path,
    )
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["api_key"] == "••••cdef"
    from_env = _cli(
        "accounts",
        "add",
        "env-grant",
        "--api-key-env",
        "MY_LAMBDA_KEY",
        home=tmp_path,
        env={"MY_LAMBDA_KEY": "secret_ENV_fedcba9876543210"},
    )
    assert from_env.returncode == 0, from_env.stderr
    listed = _cli("accounts", "list", "--json", home=tmp_path)
    rows = {r["username"]: r for r in json.loads(listed.stdout)}
    assert rows["cli-grant"]["api_key"] == "••••cdef" and rows["env-grant"]["api_key"] == "••••3210"
    bad = _cli(
        "usage",
        "add",
        "cli-grant",
        "--platform",
        "gpu_1x_a10",
        "--start",
        "2026-11-02T10:00",
        "--hours",
        "-1",
        home=tmp_path,
    )
    assert bad.returncode == 1 and "hours" in bad.stderr
    archived = _cli("accounts", "archive", "cli-grant", "--json", home=tmp_path)
    assert json.loads(archived.stdout) == {"username": "cli-grant", "status": "archived"}
    for result in (added, from_env, listed, bad, archived):
        assert key not in result.stdout + result.stderr
        assert "secret_ENV" not in result.stdout + result.stderr
    assert accounts.list_accounts()["username"].tolist() == ["env-grant"]  # the same database file


def test_budget_alerts_at_50_80_100_percent_are_recorded_once_with_a_forecast(loaded_db: str) -> None:
    from fedopt_core import auth

    accounts.register_academic_account("grant", None, None, None, monthly_budget_usd=100.0)
    now = datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert accounts.budget_alerts(now=now) == []
    accounts.add_usage_session("grant", "gpu_1x_a10", start, hours=1, cost_usd=55.0)
    [half] = accounts.budget_alerts(now=now)
    assert half.threshold == 0.5 and half.spent_usd == pytest.approx(55.0) and half.forecast_usd >= 55.0
    assert "$55.00 of $100.00" in half.message
    accounts.add_usage_session("grant", "gpu_1x_a10", start, hours=1, cost_usd=50.0)
    [over] = accounts.budget_alerts(now=now)
    assert over.threshold == 1.0
    accounts.budget_alerts(now=now)  # asked again: nothing new to record
    recorded = auth.audit_log(action="budget.alert")
    assert sorted(d["threshold"] for d in recorded["details"]) == [0.5, 0.8, 1.0]
