"""The jobs page in a real browser: an admin watches a running job's card update by itself (app/static/jobs.js
polls the API with the session), cancels one with its button (a form with a CSRF token), and sees another
finish without reloading by hand; checked at 390 and 1280 px (axe-core, no sideways scrolling)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Flask
from playwright.sync_api import expect

from app.domain.access import Principal, Role
from app.extensions import db
from app.services.operations import jobs
from tests.conftest import PASSWORD, World
from tests.jobs_support import GATE, register_test_kinds
from tests.web.screens import LAPTOP, check_page, on_path

register_test_kinds()


def gate_job(app: Flask, world: World, gate: Path) -> int:
    with app.app_context():
        admin = Principal(Role.ADMIN, "operator", world.north, "operator")
        job, _ = jobs.submit(db.session(), admin, GATE, {"gate": str(gate)})
        return job.id


def test_an_admin_watches_and_cancels_jobs(
    app: Flask, world: World, page: Any, jobs_worker: Any, tmp_path: Path
) -> None:
    finishing, stuck = tmp_path / "finishing", tmp_path / "stuck"
    first = gate_job(app, world, finishing)
    second = gate_job(app, world, stuck)
    page.set_viewport_size({"width": LAPTOP, "height": 800})
    page.goto("/login?next=/admin/jobs")
    page.get_by_label("Email").fill("admin@north.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(on_path("/admin/jobs"))
    assert page.get_by_role("link", name="Jobs").count() == 1  # in the navigation, for admins

    cards = {job: page.locator(f'li.job[data-job-url="/api/v1/jobs/{job}"]') for job in (first, second)}
    for card in cards.values():
        # Updated in place by the script as the worker reports (no reload: the same page).
        expect(card.locator("[data-job-message]")).to_have_text("waiting for the gate", timeout=20_000)
        expect(card.locator("[data-job-state]")).to_have_text("Running")
        assert card.locator("progress").count() == 1
    check_page(page, "admin-jobs", back_to=LAPTOP)

    # Cancel the second: its button posts the form; the job's own page says so.
    cards[second].get_by_role("button", name=re.compile(f"Cancel .*#{second}")).click()
    page.wait_for_url(on_path(f"/admin/jobs/{second}"))
    expect(page.locator("[data-job-state]")).to_have_text(re.compile("Running|Cancelled"))
    expect(page.locator("[data-job-state]")).to_have_text("Cancelled", timeout=20_000)  # reloaded when final
    assert page.get_by_role("button", name=re.compile("Cancel")).count() == 0
    check_page(page, "admin-job", back_to=LAPTOP)

    # The first finishes while the list is open: the page reloads itself and shows it done.
    page.goto("/admin/jobs")
    finishing.touch()
    expect(cards[first].locator("[data-job-state]")).to_have_text("Done", timeout=20_000)
    expect(cards[first].locator("progress")).to_have_attribute("value", "1")
    expect(cards[second].locator("[data-job-state]")).to_have_text("Cancelled")
