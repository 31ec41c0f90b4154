"""The OneRoster import page: an admin uploads a bundle, sees what it will change (nothing written yet),
confirms, and a real worker runs the import as a job; a bad bundle is a 400 listing its problems; a bundle
changed between the preview and the confirmation is refused. In a real browser, and with the test client."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import expect

from app.domain.access import Role
from app.extensions import db
from app.models import ClassMembership, Job, School, SchoolClass, StaffUser, Student
from app.services.people.accounts import create_staff_user
from tests.conftest import PASSWORD, World, finished_job
from tests.services.oneroster_builder import hill_roster
from tests.web.screens import LAPTOP, check_page, on_path


def north_roster() -> Any:
    # Teacher A of the world is in the roster: matched by email, not made again.
    return hill_roster().teacher("t-lee", "a@north.test", "Anna", "A")


def imported(app: Flask) -> dict[str, Any]:
    with app.app_context():
        return {
            "classes": sorted(
                db.session.scalars(sa.select(SchoolClass.name).where(SchoolClass.sourced_id.is_not(None)))
            ),
            "students": sorted(
                db.session.scalars(sa.select(Student.external_id).where(Student.sourced_id.is_not(None)))
            ),
            "members": db.session.scalar(
                sa.select(sa.func.count())
                .select_from(ClassMembership)
                .where(ClassMembership.sourced_id.is_not(None))
            ),
            "teachers": sorted(
                db.session.scalars(sa.select(StaffUser.email).where(StaffUser.sourced_id.is_not(None)))
            ),
            "jobs": db.session.scalar(sa.select(sa.func.count()).select_from(Job)),
        }


NOTHING = {"classes": [], "students": [], "members": 0, "teachers": [], "jobs": 0}
DONE = {
    "classes": ["Maths 7B", "Science 7B"],
    "students": ["s-1", "s-2", "s-3"],
    "members": 4,
    "teachers": ["a@north.test", "m.kim@hill.example"],
    "jobs": 1,
}


def test_an_admin_previews_confirms_and_watches_the_import(
    app: Flask, world: World, page: Any, jobs_worker: Any, tmp_path: Path
) -> None:
    bundle = tmp_path / "roster.zip"
    bundle.write_bytes(north_roster().bundle())
    page.set_viewport_size({"width": LAPTOP, "height": 900})
    page.goto("/login?next=/admin/oneroster")
    page.get_by_label("Email").fill("admin@north.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(on_path("/admin/oneroster"))
    page.get_by_label("OneRoster bundle (.zip)").set_input_files(str(bundle))
    page.get_by_role("button", name="Preview the import").click()
    expect(page.get_by_role("heading", name="What the import will change")).to_be_visible()
    assert page.locator('[data-count="students_added"]').inner_text() == "3"
    assert page.locator('[data-count="teachers_linked"]').inner_text() == "1"
    assert page.locator('[data-count="enrolments_added"]').inner_text() == "4"
    assert imported(app) == NOTHING  # a preview writes nothing
    check_page(page, "admin-oneroster-preview", back_to=LAPTOP)

    page.get_by_role("button", name="Confirm: import it").click()
    page.wait_for_url(re.compile(r"/admin/jobs/\d+"))
    # The job's page follows the job, then shows its result: the school's classes, the imported among them.
    page.wait_for_url(on_path("/classes"), timeout=30_000)
    expect(page.get_by_role("link", name="Maths 7B")).to_be_visible()
    expect(page.get_by_role("link", name="Science 7B")).to_be_visible()
    assert imported(app) == DONE


def test_a_bad_bundle_is_refused_with_its_problems_and_a_changed_one_at_confirmation(
    app: Flask, world: World, jobs_worker: Any
) -> None:
    admin = world.actors["admin"]
    admin.refresh_csrf("/admin/oneroster")

    def upload(data: bytes) -> Any:
        return admin.client.post(
            "/admin/oneroster",
            data={"csrf_token": admin.csrf, "bundle": (io.BytesIO(data), "roster.zip"), "org": ""},
            content_type="multipart/form-data",
        )

    roster = north_roster()
    roster.enrollments["enr-x"] = ("k-nowhere", "s-1", "student", "", "")
    refused = upload(roster.bundle())
    text = html.unescape(refused.get_data(as_text=True))
    assert refused.status_code == 400
    assert "1 problem: nothing was imported" in text
    assert (
        "enrollments.csv:8</code> unknown reference classSourcedId 'k-nowhere' (not in classes.csv)" in text
    )
    assert upload(b"not a zip").status_code == 400
    assert imported(app) == NOTHING

    preview = upload(north_roster().bundle())
    assert preview.status_code == 200
    fields = dict(
        re.findall(
            r'<input id="(\w+)" name="\w+" type="hidden" value="([^"]*)"', preview.get_data(as_text=True)
        )
    )
    assert set(fields) >= {"content", "sha256", "file_name", "org"}
    tampered = {**fields, "sha256": "0" * 64}
    assert admin.request("POST", "/admin/oneroster/confirm", form=tampered).status_code == 400
    assert imported(app) == NOTHING

    confirmed = admin.request("POST", "/admin/oneroster/confirm", form=fields)
    assert confirmed.status_code == 303
    job_id = int(re.search(r"/admin/jobs/(\d+)", confirmed.headers["Location"]).group(1))
    done = finished_job(admin, f"/api/v1/jobs/{job_id}")
    assert done["state"] == "succeeded" and done["kind"] == "oneroster_import"
    assert done["result"]["counts"]["students_added"] == 3
    assert imported(app) == DONE
    # The same bundle once more: the preview says there is nothing to do, and offers no confirmation.
    again = upload(north_roster().bundle())
    assert "nothing to import" in again.get_data(as_text=True) and "Confirm: import it" not in again.get_data(
        as_text=True
    )


def test_the_job_checks_the_bundle_again_and_fails_whole_when_the_school_changed(
    app: Flask, world: World, jobs_worker: Any
) -> None:
    admin = world.actors["admin"]
    admin.refresh_csrf("/admin/oneroster")
    preview = admin.client.post(
        "/admin/oneroster",
        data={"csrf_token": admin.csrf, "bundle": (io.BytesIO(north_roster().bundle()), "roster.zip")},
        content_type="multipart/form-data",
    )
    assert preview.status_code == 200
    fields = dict(
        re.findall(
            r'<input id="(\w+)" name="\w+" type="hidden" value="([^"]*)"', preview.get_data(as_text=True)
        )
    )
    # Meanwhile another school takes the email of one of the roster's teachers.
    with app.app_context():
        south = db.session.get(School, world.south)
        create_staff_user(db.session(), south, "m.kim@hill.example", "Ms Kim", PASSWORD, role=Role.TEACHER)
    confirmed = admin.request("POST", "/admin/oneroster/confirm", form=fields)
    job_id = int(re.search(r"/admin/jobs/(\d+)", confirmed.headers["Location"]).group(1))
    done = finished_job(admin, f"/api/v1/jobs/{job_id}")
    assert done["state"] == "failed"
    assert (
        "users.csv:3: email 'm.kim@hill.example' is the login of a staff user of another school"
        in done["error"]
    )
    assert imported(app) == {**NOTHING, "jobs": 1}
    page = admin.client.get(f"/admin/jobs/{job_id}").get_data(as_text=True)
    assert "is the login of a staff user of another school" in html.unescape(page)
