"""A real browser (Debian's Chromium, driven by Playwright) for page tests; the real server they load pages
from is tests/conftest.py's ``live_server``; and the real LTI platform the LTI tests launch from."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.conftest import serve
from tests.web.lti_platform import (
    CLIENT_ID,
    DEPLOYMENT_ID,
    INSTRUCTOR,
    LEARNER,
    MENTOR,
    Platform,
    User,
    platform_app,
)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        message = f"no Chromium at {CHROMIUM} (apt-get install -y chromium; scripts/test does it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, live_server: str) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def screenshot(page: Any, name: str) -> None:
    """Saved for people to look at (not committed); CI keeps test-artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def platform(app: Flask, live_server: str, school: str, runner: Any) -> Iterator[Platform]:
    """The LTI platform (tests/web/lti_platform.py), served, and registered with the tutor by the
    operator's command."""
    lms = Platform(tool_base=live_server)
    lms.users["ada"] = User("lms-user-77", [LEARNER], "Ada Lovelace", "ada@example.edu")
    lms.users["grace"] = User("lms-teacher-9", [INSTRUCTOR], "Grace Hopper", "grace@example.edu")
    lms.users["linus"] = User("lms-teacher-10", [INSTRUCTOR], "Linus Pauling", "linus@example.edu")
    lms.users["mona"] = User("lms-mentor-3", [MENTOR], "Mona Mentor", "mona@example.edu")
    with serve(platform_app(lms)) as url:
        lms.base = url.replace("127.0.0.1", "localhost")
        result = runner.invoke(
            args=[
                "lti",
                "register-platform",
                "--name",
                "Test LMS",
                "--issuer",
                lms.issuer,
                "--client-id",
                CLIENT_ID,
                "--deployment-id",
                DEPLOYMENT_ID,
                "--auth-login-url",
                f"{lms.base}/authorize",
                "--auth-token-url",
                f"{lms.base}/token",
                "--key-set-url",
                f"{lms.base}/jwks",
            ]
        )
        assert result.exit_code == 0, result.output
        yield lms
