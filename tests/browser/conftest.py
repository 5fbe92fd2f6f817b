"""A headless Debian Chromium for the browser tests (never a downloaded browser)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.helpers import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian chromium is not installed (make test installs it)"
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
