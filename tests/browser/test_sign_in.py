"""Sign-in for a shared deployment: a real OpenID Connect provider on loopback, real Chromium.

The provider is oidc-provider-mock; Streamlit's own st.login does the OIDC code flow.  A member
may log runs but cannot open admin pages; an admin can; a signed-out visitor sees only sign-in.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from tests.browser.helpers import free_port, start_dashboard, stop_dashboard

pytestmark = pytest.mark.browser

MEMBER = "mia.member@uni.edu"
ADMIN = "ada.admin@uni.edu"
VIEWER_WITH_FORGED_CLAIM = "eve@uni.edu"
LAB_KEY = "secret_0123456789_lab_key_9876"


@pytest.fixture(scope="module")
def identity_provider():
    from oidc_provider_mock import User, run_server_in_thread

    users = [
        User(sub=MEMBER, claims={"email": MEMBER, "email_verified": True, "name": "Mia", "fedopt_role": "member"}),
        User(sub=ADMIN, claims={"email": ADMIN, "email_verified": True, "name": "Ada"}),
        User(
            sub=VIEWER_WITH_FORGED_CLAIM,
            claims={"email": VIEWER_WITH_FORGED_CLAIM, "name": "Eve", "fedopt_role": "superuser"},
        ),
    ]
    with run_server_in_thread(port=free_port(), user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def signed_in_dashboard(tmp_path_factory: pytest.TempPathFactory, identity_provider: str):
    home = tmp_path_factory.mktemp("signin")
    port = free_port()
    secrets_file = home / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(16)}"\n'
        'client_id = "fedopt-test"\n'
        'client_secret = "not-a-real-secret"\n'
        f'server_metadata_url = "{identity_provider}/.well-known/openid-configuration"\n',
        encoding="utf-8",
    )
    env = os.environ | {
        "FEDOPT_HOME": str(home),
        "DATABASE_URL": f"sqlite:///{home / 'fedopt.db'}",
        "FEDOPT_ROLE_CLAIM": "fedopt_role",
    }
    # The CLI acts as the local admin: it is how the first admin of a deployment is named.
    for command in (
        ["setup"],
        ["roles", "set", ADMIN, "admin"],
        ["accounts", "add", "lab-lambda", "--email", ADMIN, "--api-key-env", "LAB_KEY"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "fedopt_core.cli", *command],
            env=env | {"LAB_KEY": LAB_KEY},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
    server = start_dashboard(home, port, env, extra_args=["--secrets.files", str(secrets_file)], address="localhost")
    yield f"http://localhost:{port}"
    stop_dashboard(server)


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    yield context
    context.close()


def sign_in(context, base: str, who: str):
    page = context.new_page()
    page.goto(base)
    page.get_by_role("heading", name="Sign in to fedopt").wait_for(timeout=60_000)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name=who).click()  # the provider's one-click user
    page.get_by_text(f"({'admin' if who == ADMIN else 'member' if who == MEMBER else 'viewer'})").wait_for(
        timeout=60_000
    )
    return page


def sidebar_links(page) -> list[str]:
    # Each link reads "<icon name>\n\n<title>"; keep the title.
    links = page.get_by_test_id("stSidebar").get_by_test_id("stPageLink-NavLink")
    links.first.wait_for(timeout=60_000)
    return [t.strip().splitlines()[-1] for t in links.all_inner_texts()]


def test_a_signed_out_visitor_sees_only_the_sign_in_page(signed_in_dashboard: str, context) -> None:
    page = context.new_page()
    # /admin first: on a fresh server Streamlit may serve pages/admin.py directly, before the
    # main script has ever built a navigation; the page must still demand sign-in.
    for path in ("admin", "accounts", "platforms", ""):
        page.goto(f"{signed_in_dashboard}/{path}")
        # Text, not role: Streamlit's "page not found" notice is modal and hides headings from roles.
        page.get_by_text("Sign in to fedopt").wait_for(timeout=60_000)
        page.wait_for_load_state("networkidle")
        assert page.get_by_test_id("stSidebarNav").count() == 0
        assert page.get_by_test_id("stPageLink").count() == 0
        assert page.get_by_text("Add or edit a platform").count() == 0
        assert page.get_by_text("Audit log").count() == 0
        assert page.get_by_text("••••").count() == 0


def test_a_member_cannot_open_admin_pages(signed_in_dashboard: str, context) -> None:
    page = sign_in(context, signed_in_dashboard, MEMBER)
    links = sidebar_links(page)
    assert "Platforms" in links and "Audit & roles" not in links
    assert "Accounts" not in links and "Machines" not in links
    for path in ("admin", "accounts", "machines"):
        page.goto(f"{signed_in_dashboard}/{path}")
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(1000)
        assert page.get_by_role("heading", name="Audit & roles").count() == 0
        assert page.get_by_role("heading", name="Accounts").count() == 0
        assert page.get_by_text(LAB_KEY[-4:]).count() == 0  # not even the masked key


def test_an_admin_can_open_admin_pages(signed_in_dashboard: str, context) -> None:
    page = sign_in(context, signed_in_dashboard, ADMIN)
    assert "Audit & roles" in sidebar_links(page)
    page.goto(f"{signed_in_dashboard}/admin")
    page.get_by_role("heading", name="Audit & roles").wait_for(timeout=60_000)
    assert page.locator("[data-testid='stException']").count() == 0
    page.goto(f"{signed_in_dashboard}/accounts")
    page.get_by_role("heading", name="Accounts").wait_for(timeout=60_000)
    page.wait_for_load_state("networkidle")
    page.get_by_test_id("stDataFrame").first.wait_for(timeout=60_000)
    page.wait_for_timeout(3000)
    assert page.get_by_text("••••" + LAB_KEY[-4:]).count() >= 1  # masked, last four only
    assert page.get_by_text(LAB_KEY).count() == 0
    assert LAB_KEY not in page.content()


def test_a_forged_role_claim_gives_the_lowest_role(signed_in_dashboard: str, context) -> None:
    page = sign_in(context, signed_in_dashboard, VIEWER_WITH_FORGED_CLAIM)
    assert "Audit & roles" not in sidebar_links(page)
