"""What every page of the browser walks must pass, at a phone's width (390 px) and a laptop's (1280 px):
no axe-core violation (WCAG A/AA rules and best practices), no sideways scrolling, no statistics jargon
("P(L)"); and a screenshot of each (test-artifacts/<name>-<width>.png, linked from docs/SCREENS.md)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from axe_playwright_python.sync_playwright import Axe

from app.domain.wording import percent
from tests.web.conftest import screenshot

AXE = Axe()
PHONE, LAPTOP = 390, 1280
WIDTHS = (PHONE, LAPTOP)


def on_path(path: str) -> Any:
    return lambda url: urlsplit(url).path == path


# The elements that stick out on the right (for the failure message).
TOO_WIDE = """[...document.querySelectorAll('main *')]
  .filter(e => e.getBoundingClientRect().right > innerWidth + 1).slice(0, 5)
  .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"""


def check_page(page: Any, name: str, *, back_to: int = PHONE) -> None:
    """The page as it is now, at both widths; the viewport returns to ``back_to`` afterwards."""
    html = page.content()
    assert "P(L)" not in html, f"{name} shows statistics jargon"
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 800})
        violations = AXE.run(page).response["violations"]
        summary = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in violations]
        assert summary == [], f"{name} at {width} px: {summary}"
        fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert fits, f"{name} scrolls sideways at {width} px: {page.evaluate(TOO_WIDE)}"
        screenshot(page, f"{name}-{width}")
    page.set_viewport_size({"width": back_to, "height": 800})


def percent_text(p: float) -> str:
    """How the pages print a mastery estimate."""
    return f"{percent(p)}%"
