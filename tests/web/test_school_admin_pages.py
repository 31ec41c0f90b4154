"""The school administration pages (/admin): in a real browser, an admin adds a teacher who then signs in,
creates a class and gives it to a teacher whose dashboard then lists it, enrols a roster CSV after its
preview and prints the code slips a student signs in with; with the test client, what other pages must
agree with (a deactivated teacher cannot sign in, an archived class leaves the dashboard, a reissued code
stops working), a bad roster row named with its line and nothing written, and another school unreachable."""

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
from app.models import AdminChange, ClassMembership, School, StaffUser, Student
from app.services.people.accounts import create_class, create_staff_user
from tests.conftest import PASSWORD, Actor, World
from tests.web.screens import LAPTOP, check_page, on_path


def sign_in(page: Any, email: str, password: str, next_path: str) -> None:
    page.goto(f"/login?next={next_path}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.keyboard.press("Enter")
    page.wait_for_url(on_path(next_path))


def count(app: Flask, model: Any) -> int:
    with app.app_context():
        n = db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0
        db.session.commit()
    return n


def actions(app: Flask) -> list[str]:
    with app.app_context():
        done = list(db.session.scalars(sa.select(AdminChange.action).order_by(AdminChange.id)))
        db.session.commit()
    return done


def test_an_admin_adds_a_teacher_who_signs_in_and_gives_them_a_class(
    app: Flask, world: World, page: Any, browser: Any, live_server: str
) -> None:
    page.set_viewport_size({"width": LAPTOP, "height": 900})
    sign_in(page, "admin@north.test", PASSWORD, "/classes")
    page.get_by_role("link", name="School admin").click()  # in the navigation, for admins
    page.wait_for_url(on_path("/admin"))
    check_page(page, "admin-home", back_to=LAPTOP)
    page.get_by_role("link", name="Teachers").click()
    page.wait_for_url(on_path("/admin/teachers"))
    page.get_by_label("Name").fill("Tess New")
    page.get_by_label("Email").fill("tess@north.test")
    page.get_by_role("button", name="Add the teacher").click()
    expect(page.locator("[data-password]")).to_be_visible()
    password = page.locator("[data-password]").inner_text()
    expect(page.locator('li[data-email="tess@north.test"] [data-status]')).to_have_text("active")
    check_page(page, "admin-teachers", back_to=LAPTOP)

    page.goto("/admin/classes")
    page.get_by_label("Class name").fill("Maths 8")
    page.get_by_label("Teacher", exact=True).select_option(label="A (a@north.test)")
    page.get_by_role("button", name="Create the class").click()
    page.wait_for_url(on_path("/admin/classes"))
    entry = page.locator('li[data-class="Maths 8"]')
    expect(entry).to_contain_text("Teacher: A")
    entry.get_by_label("Give it to").select_option(label="Tess New (tess@north.test)")
    entry.get_by_role("button", name="Change teacher").click()
    page.wait_for_url(on_path("/admin/classes"))
    expect(page.locator('li[data-class="Maths 8"]')).to_contain_text("Teacher: Tess New")
    check_page(page, "admin-classes", back_to=LAPTOP)
    page.goto("/admin/changes")
    expect(page.locator("table.changes")).to_contain_text("teacher changed")
    check_page(page, "admin-changes", back_to=LAPTOP)

    # The new teacher signs in with the password shown once and finds the class on their dashboard.
    context = browser.new_context(base_url=live_server)
    tess = context.new_page()
    sign_in(tess, "tess@north.test", password, "/classes")
    expect(tess.get_by_role("link", name="Maths 8")).to_be_visible()
    assert tess.get_by_role("link", name="School admin").count() == 0  # not an admin
    context.close()
    assert actions(app) == ["teacher added", "class created", "teacher changed"]


def test_a_roster_is_previewed_then_enrolled_and_a_student_signs_in_from_a_slip(
    app: Flask, world: World, page: Any, browser: Any, live_server: str, tmp_path: Path
) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("external_id\nstudent-a\nnew-1\nnew-2\n", encoding="utf-8")
    page.set_viewport_size({"width": LAPTOP, "height": 900})
    sign_in(page, "admin@north.test", PASSWORD, "/admin/classes")
    page.locator('li[data-class="Class A"]').get_by_role("link", name="Upload a roster").click()
    page.get_by_label("Roster CSV").set_input_files(str(roster))
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("heading", name="What enrolling this roster will change")).to_be_visible()
    assert page.locator('[data-count="new_students"]').inner_text() == "2"
    assert page.locator('[data-count="already"]').inner_text() == "1"
    assert page.locator('[data-count="codes"]').inner_text() == "2"
    assert count(app, Student) == 2  # the preview wrote nothing
    check_page(page, "admin-roster-preview", back_to=LAPTOP)

    page.get_by_role("button", name="Confirm: enrol them").click()
    expect(page.get_by_role("heading", name="Code slips for Class A")).to_be_visible()
    slip = page.locator('li[data-student="new-1"]')
    code = slip.locator("[data-code]").inner_text()
    join = slip.locator("[data-join-code]").inner_text()
    assert join == world.join_a
    assert page.locator('li[data-student="student-a"] [data-code]').count() == 0  # keeps their code
    check_page(page, "admin-slips", back_to=LAPTOP)
    page.emulate_media(media="print")  # only the slips are printed
    assert not page.locator("header.top").is_visible()
    assert slip.is_visible()
    assert not page.locator('li[data-student="student-a"]').is_visible()  # no new code: no slip
    page.emulate_media(media="screen")
    with app.app_context():
        assert set(db.session.scalars(sa.select(Student.external_id))) == {
            "student-a",
            "student-b",
            "new-1",
            "new-2",
        }
        db.session.commit()

    context = browser.new_context(base_url=live_server)  # the student, on a device of their own
    student = context.new_page()
    student.goto("/student-login")
    student.get_by_label("Class code").fill(join)
    student.get_by_label("Your personal code").fill(code)
    student.keyboard.press("Enter")
    student.wait_for_url(on_path("/practice"))
    context.close()


def upload_roster(admin: Actor, class_id: int, text: str, reissue: bool = False) -> Any:
    data: dict[str, Any] = {
        "csrf_token": admin.csrf,
        "roster": (io.BytesIO(text.encode()), "roster.csv"),
    }
    if reissue:
        data["reissue"] = "y"
    return admin.client.post(
        f"/admin/classes/{class_id}/roster", data=data, content_type="multipart/form-data"
    )


def hidden_fields(response: Any) -> dict[str, str]:
    return dict(
        re.findall(
            r'<input id="(\w+)" name="\w+" type="hidden" value="([^"]*)"', response.get_data(as_text=True)
        )
    )


def test_a_bad_roster_row_is_named_with_its_line_and_nothing_is_written(app: Flask, world: World) -> None:
    admin = world.actors["admin"]
    admin.refresh_csrf("/admin/classes")
    students, members = count(app, Student), count(app, ClassMembership)
    refused = upload_roster(admin, world.class_a, "external_id\nok-1\nok-2\nok-1\n")
    text = html.unescape(refused.get_data(as_text=True))
    assert refused.status_code == 400
    assert "line 4: 'ok-1' repeats line 2" in text and "nothing was enrolled" in text
    assert "Confirm: enrol them" not in text
    no_column = upload_roster(admin, world.class_a, "name\nAnna\n")
    assert no_column.status_code == 400 and "external_id" in no_column.get_data(as_text=True)
    binary = admin.client.post(
        f"/admin/classes/{world.class_a}/roster",
        data={"csrf_token": admin.csrf, "roster": (io.BytesIO(b"\xff\xfe\x00"), "r.csv")},
        content_type="multipart/form-data",
    )
    assert binary.status_code == 400 and "not a UTF-8 CSV" in binary.get_data(as_text=True)

    preview = upload_roster(admin, world.class_a, "external_id\nok-1\nok-2\n")
    fields = hidden_fields(preview)
    tampered = {**fields, "sha256": "0" * 64}
    assert (
        admin.request("POST", f"/admin/classes/{world.class_a}/roster/confirm", form=tampered).status_code
        == 400
    )
    assert (count(app, Student), count(app, ClassMembership)) == (students, members)
    assert actions(app) == []
    done = admin.request("POST", f"/admin/classes/{world.class_a}/roster/confirm", form=fields)
    assert done.status_code == 201 and count(app, Student) == students + 2
    assert actions(app) == ["roster enrolled"]


def test_what_the_admin_changes_holds_on_every_other_page(app: Flask, world: World) -> None:
    admin, teacher_a, student_a = world.actors["admin"], world.actors["teacher_a"], world.actors["student_a"]
    admin.refresh_csrf("/admin/teachers")
    with app.app_context():
        b_id = db.session.scalar(sa.select(StaffUser.id).where(StaffUser.email == "b@north.test"))
        db.session.commit()

    # A deactivated teacher's session ends and they cannot sign in again; reactivated, they can.
    teacher_b = world.actors["teacher_other"]
    assert teacher_b.request("GET", "/classes").status_code == 200
    assert admin.request("POST", f"/admin/teachers/{b_id}/deactivate", form={}).status_code == 303
    assert teacher_b.request("GET", "/classes").status_code == 302
    again = Actor("b", app.test_client())
    assert again.sign_in_staff("b@north.test").status_code == 401
    assert admin.request("POST", f"/admin/teachers/{b_id}/reactivate", form={}).status_code == 303
    assert again.sign_in_staff("b@north.test").status_code == 302

    # A new password: the old one no longer signs in.
    reset = admin.request("POST", f"/admin/teachers/{b_id}/password", form={})
    password = re.search(r"<code class=\"secret\" data-password>([^<]+)</code>", reset.get_data(as_text=True))
    assert reset.status_code == 200 and password
    assert Actor("b2", app.test_client()).sign_in_staff("b@north.test").status_code == 401
    assert (
        Actor("b3", app.test_client())
        .sign_in_staff("b@north.test", html.unescape(password.group(1)))
        .status_code
        == 302
    )

    # Made an admin: the admin pages open for them at once.
    promoted = Actor("b4", app.test_client())
    promoted.sign_in_staff("b@north.test", html.unescape(password.group(1)))
    assert promoted.request("GET", "/admin").status_code == 403
    assert admin.request("POST", f"/admin/teachers/{b_id}/role", form={"admin": "on"}).status_code == 303
    assert promoted.request("GET", "/admin").status_code == 200

    # The admin may not lock themself out.
    with app.app_context():
        me = db.session.scalar(sa.select(StaffUser.id).where(StaffUser.email == "admin@north.test"))
        db.session.commit()
    refused = admin.request("POST", f"/admin/teachers/{me}/deactivate", form={})
    assert refused.status_code == 400 and "yourself" in refused.get_data(as_text=True)

    # A reissued personal code: the old one no longer signs in, the slip's does.
    slips = admin.request("POST", f"/admin/classes/{world.class_a}/codes", form={})
    code = re.search(r"<code data-code>([^<]+)</code>", slips.get_data(as_text=True))
    assert slips.status_code == 200 and code
    assert student_a.request("GET", "/me").status_code == 302  # their session ended
    assert Actor("s", app.test_client()).sign_in_student(world.join_a, world.code_a).status_code == 401
    assert Actor("s2", app.test_client()).sign_in_student(world.join_a, code.group(1)).status_code == 302

    # A new class code: the old one no longer signs in.
    assert admin.request("POST", f"/admin/classes/{world.class_a}/join-code", form={}).status_code == 303
    assert Actor("s3", app.test_client()).sign_in_student(world.join_a, code.group(1)).status_code == 401

    # Archived: gone from its teacher's dashboard and the admin's class list; its page is not found.
    assert "Class A" in teacher_a.request("GET", "/classes").get_data(as_text=True)
    assert admin.request("POST", f"/admin/classes/{world.class_a}/archive", form={}).status_code == 303
    assert "Class A" not in teacher_a.request("GET", "/classes").get_data(as_text=True)
    assert teacher_a.request("GET", f"/classes/{world.class_a}").status_code == 404
    listing = admin.request("GET", "/admin/classes").get_data(as_text=True)
    assert "archived" in listing
    assert actions(app) == [
        "deactivated",
        "reactivated",
        "password reset",
        "made admin",
        "personal codes reissued",
        "class code reissued",
        "class archived",
    ]


def test_an_admin_reaches_only_their_own_school_and_a_teacher_none(app: Flask, world: World) -> None:
    with app.app_context():
        south = db.session.get(School, world.south)
        assert south is not None
        other = create_staff_user(db.session(), south, "t@south.test", "South T", PASSWORD, role=Role.TEACHER)
        other_class = create_class(db.session(), other, "South class")
        ids = other.id, other_class.id
        db.session.commit()
    admin = world.actors["admin"]
    admin.refresh_csrf("/admin/teachers")
    assert admin.request("POST", f"/admin/teachers/{ids[0]}/deactivate", form={}).status_code == 404
    assert admin.request("POST", f"/admin/classes/{ids[1]}/archive", form={}).status_code == 404
    assert admin.request("GET", f"/admin/classes/{ids[1]}/roster").status_code == 404
    assert "South" not in admin.request("GET", "/admin/teachers").get_data(as_text=True)
    # Giving a class to a teacher of another school: not a choice, refused.
    refused = admin.request("POST", f"/admin/classes/{world.class_a}/teacher", form={"teacher": str(ids[0])})
    assert refused.status_code == 400
    teacher = world.actors["teacher_a"]
    for method, url in (
        ("GET", "/admin"),
        ("GET", "/admin/teachers"),
        ("POST", "/admin/teachers"),
        ("GET", "/admin/classes"),
        ("POST", f"/admin/classes/{world.class_a}/archive"),
        ("GET", "/admin/changes"),
    ):
        assert teacher.request(method, url, form={} if method == "POST" else None).status_code == 403
    assert actions(app) == []
