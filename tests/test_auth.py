"""Roles and the audit log: the lowest role unless something trusted says otherwise."""

from __future__ import annotations

import pytest

from fedopt_core import auth, catalog


def test_without_sign_in_the_actor_is_the_local_admin(empty_db: str) -> None:
    assert auth.current_actor() == auth.LOCAL_ADMIN
    assert auth.require("admin").name == "local"


def test_roles_come_from_the_table_then_a_trusted_claim_else_viewer(empty_db: str, monkeypatch) -> None:
    auth.set_role("ada@uni.edu", "member")
    assert auth.actor_from_identity({"email": "ada@uni.edu", "email_verified": True}).role == "member"
    assert auth.actor_from_identity({"email": "bob@uni.edu"}).role == "viewer"
    monkeypatch.setenv(auth.ROLE_CLAIM_ENV, "fedopt_role")
    claims = {"email": "bob@uni.edu", "email_verified": True, "fedopt_role": "admin"}
    assert auth.actor_from_identity(claims).role == "admin"


@pytest.mark.parametrize(
    "claims",
    [
        {"email": "eve@uni.edu", "fedopt_role": "superadmin"},
        {"email": "eve@uni.edu", "fedopt_role": ["admin"]},
        {"email": "eve@uni.edu", "role": "admin"},  # not the configured claim
        {"email": "eve@uni.edu"},
        {"fedopt_role": "admin"},  # no e-mail at all
        {"email": "eve@uni.edu", "email_verified": False, "fedopt_role": "admin"},
    ],
)
def test_forged_or_missing_claims_give_the_lowest_role(empty_db: str, monkeypatch, claims: dict) -> None:
    monkeypatch.setenv(auth.ROLE_CLAIM_ENV, "fedopt_role")
    assert auth.actor_from_identity(claims).role == "viewer"


def test_admin_e_mails_from_the_environment(empty_db: str, monkeypatch) -> None:
    monkeypatch.setenv(auth.ADMIN_EMAILS_ENV, "Boss@Uni.edu, other@uni.edu")
    assert auth.actor_from_identity({"email": "boss@uni.edu", "email_verified": True}).role == "admin"


@pytest.mark.parametrize("verified", ["false", "true", 1, None, "missing"])
def test_only_a_boolean_true_verifies_an_admin_e_mail(empty_db: str, monkeypatch, verified: object) -> None:
    monkeypatch.setenv(auth.ADMIN_EMAILS_ENV, "boss@uni.edu")
    auth.set_role("boss@uni.edu", "member")
    claims = {"email": "boss@uni.edu", "sub": "idp-42"}
    if verified != "missing":
        claims["email_verified"] = verified
    actor = auth.actor_from_identity(claims)
    assert actor.role == "viewer" and not actor.email_verified
    assert actor.identity == "sub:idp-42"  # an unverified e-mail is not who it is


def test_the_audit_and_logged_runs_record_the_verified_e_mail_not_the_display_name(loaded_db: str) -> None:
    from fedopt_core import runs

    auth.set_role("ada@uni.edu", "admin")
    ada = auth.actor_from_identity({"email": "Ada@uni.edu", "email_verified": True, "name": "Ada (admin)"})
    assert ada.role == "admin" and ada.identity == "ada@uni.edu" and ada.label == "ada@uni.edu (Ada (admin))"
    with auth.acting_as(ada):
        catalog.save_platform({"provider": "on-prem", "instance_type": "box", "gpu_type": "A10", "gpu_count": 1})
        logged = runs.log_run({"gpu_type": "A10", "gpu_count": 1, "execution_time_s": 5.0})
    event = auth.audit_log(action="platform.add").iloc[0]
    assert event["actor"] == "ada@uni.edu" and event["details"]["actor_name"] == "Ada (admin)"
    stored = runs.list_runs()
    assert stored.loc[stored["id"] == logged.run_id, "logged_by"].item() == "ada@uni.edu"


def test_core_writes_check_the_role_and_are_audited(loaded_db: str) -> None:
    values = {"provider": "on-prem", "instance_type": "box", "gpu_type": "A10", "gpu_count": 1}
    viewer = auth.Actor(name="vic", role="viewer", email="vic@uni.edu", signed_in=True)
    with auth.acting_as(viewer), pytest.raises(auth.PermissionDenied, match="member"):
        catalog.save_platform(values)
    assert catalog.list_platforms(provider="on-prem").empty
    member = auth.Actor(name="mia", role="member", email="mia@uni.edu", signed_in=True)
    with auth.acting_as(member):
        catalog.save_platform(values)
        with pytest.raises(auth.PermissionDenied):
            auth.set_role("mia@uni.edu", "admin")
    log = auth.audit_log()
    assert log.iloc[0]["actor"] == "mia" and log.iloc[0]["action"] == "platform.add"
    assert log.iloc[0]["target"] == "on-prem/box"


def test_unknown_roles_are_refused(empty_db: str) -> None:
    with pytest.raises(ValueError, match="role"):
        auth.set_role("x@uni.edu", "owner")
