"""The school's students as a list (GET /students) and who is in a class (POST / DELETE
/classes/<id>/students), through the real app and database, per role."""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import Flask

from app.domain.access import Role
from app.extensions import db
from app.models import AccessLogEntry, ClassMembership, School, StudentCredential
from app.services.people.accounts import create_class, create_staff_user
from tests.api import test_concurrency
from tests.api.test_concurrency import Server, call, new_student, run_all
from tests.api.test_query_counts import counted
from tests.conftest import PASSWORD, Actor, ApiClient, World, issue_key

STUDENTS = "/api/v1/students"
# A gunicorn server with several worker processes, on the test's database (shared with the concurrency tests).
server = test_concurrency.server


def app_actor_of(api: ApiClient) -> Actor:
    """The ``api`` fixture's app (a school of its own, without classes) as an Actor."""
    return Actor("api", api.client, api.headers["Authorization"].split()[1])


def listing(actor: Actor, **query: Any) -> Any:
    """GET /students as ``actor`` (query values as given: strings stay strings)."""
    url = f"{STUDENTS}?{urlencode(query)}" if query else STUDENTS
    return actor.request("GET", url)


def ids_of(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [s["external_id"] for s in response.get_json()["items"]]


def new_students(actor: Actor, *external_ids: str) -> dict[str, str]:
    """external id -> id, created through the API by an app."""
    made = {}
    for external_id in external_ids:
        response = actor.request("POST", STUDENTS, json={"external_id": external_id})
        assert response.status_code in (200, 201), response.get_json()
        made[external_id] = response.get_json()["id"]
    return made


def answer(actor: Actor, student_id: str, exercise_id: str) -> None:
    response = actor.request(
        "POST", f"{STUDENTS}/{student_id}/responses", json={"exercise_id": exercise_id, "correct": True}
    )
    assert response.status_code == 201, response.get_json()


def single_skill_exercise(shipped_graph: Any) -> str:
    return next(e.id for e in shipped_graph.exercises.values() if len(e.skill_ids) == 1)


def two_skill_exercise(shipped_graph: Any) -> str:
    return next(e.id for e in shipped_graph.exercises.values() if len(e.skill_ids) == 2)


def members_of(app: Flask, class_id: int) -> set[str]:
    with app.app_context():
        return set(
            db.session.scalars(
                sa.select(ClassMembership.student_id).where(ClassMembership.class_id == class_id)
            )
        )


def enrol(actor: Actor, class_id: int, **body: Any) -> Any:
    return actor.request("POST", f"/api/v1/classes/{class_id}/students", json=body)


def remove(actor: Actor, class_id: int, student_id: str) -> Any:
    return actor.request("DELETE", f"/api/v1/classes/{class_id}/students/{student_id}")


# --- GET /students -----------------------------------------------------------------------------------


def test_each_role_lists_the_students_it_may_see(app: Flask, world: World) -> None:
    a = world.actors
    new_students(a["app1"], "x-1", "x-2")  # of the school, in no class
    everyone = ["student-a", "student-b", "x-1", "x-2"]
    assert ids_of(listing(a["app1"])) == everyone
    assert ids_of(listing(a["admin"])) == everyone
    assert ids_of(listing(a["teacher_a"])) == ["student-a"]
    assert ids_of(listing(a["teacher_other"])) == ["student-b"]
    south = listing(a["app2"]).get_json()
    assert south["items"] == [] and south["total"] == 0 and south["next_page"] is None
    for student in ("student_a", "student_b"):
        refused = listing(a[student])
        assert refused.status_code == 403
        assert refused.get_json()["message"] == "A student may not list students."
    assert listing(a["anonymous"]).status_code == 401


def test_items_carry_the_student_fields_last_activity_and_the_answer_counter(
    app: Flask, world: World, shipped_graph: Any
) -> None:
    app1 = world.actors["app1"]
    answer(app1, world.student_a, two_skill_exercise(shipped_graph))  # one answer, two skills: counts once
    answer(app1, world.student_a, single_skill_exercise(shipped_graph))
    body = listing(app1).get_json()
    assert set(body) == {"items", "page", "per_page", "total", "next_page"}
    assert (body["page"], body["per_page"], body["total"], body["next_page"]) == (1, 50, 2, None)
    a, b = body["items"]
    assert set(a) == {
        "id",
        "external_id",
        "created_at",
        "personalized",
        "personalization_changed_at",
        "last_active_at",
        "answers",
    }
    profile = app1.request("GET", f"{STUDENTS}/{world.student_a}").get_json()
    assert {k: a[k] for k in profile} == profile  # the same fields as GET /students/<id>
    assert a["answers"] == 2 and a["last_active_at"] is not None
    assert (b["external_id"], b["answers"], b["last_active_at"]) == ("student-b", 0, None)
    report = app1.request("GET", f"{STUDENTS}/{world.student_a}/report").get_json()
    assert report["answers"] == a["answers"] and report["last_activity_at"] == a["last_active_at"]


def test_external_id_q_and_class_filters(app: Flask, world: World) -> None:
    app1, teacher = world.actors["app1"], world.actors["teacher_a"]
    new_students(app1, "Ann-1", "ann-2", "bob", "a_b", "axb", "50%")
    # exact, after the cleaning POST /students applies
    assert ids_of(listing(app1, external_id="  ann-2 ")) == ["ann-2"]
    assert ids_of(listing(app1, external_id="ann")) == []
    bad = listing(app1, external_id="   ")
    assert bad.status_code == 422 and "external_id" in bad.get_json()["errors"]["query"]
    # a prefix, whatever the case; LIKE's wildcards are plain characters here
    assert ids_of(listing(app1, q="ANN")) == ["Ann-1", "ann-2"]
    assert ids_of(listing(app1, q="a_")) == ["a_b"]
    assert ids_of(listing(app1, q="%")) == []
    assert ids_of(listing(app1, q="50%")) == ["50%"]
    assert ids_of(listing(app1, q="nn")) == []  # a prefix, not a substring
    assert listing(app1, q="").status_code == 422
    # filters combine
    assert ids_of(listing(app1, q="ann", external_id="ann-2")) == ["ann-2"]
    assert ids_of(listing(app1, q="bob", external_id="ann-2")) == []
    # a class: its students; one the caller cannot see, or none at all, is a 404 as everywhere
    assert ids_of(listing(app1, class_id=world.class_b)) == ["student-b"]
    assert ids_of(listing(teacher, class_id=world.class_a)) == ["student-a"]
    assert ids_of(listing(teacher, class_id=world.class_a, q="student-b")) == []
    for actor, class_id in ((teacher, world.class_b), (world.actors["app2"], world.class_a), (app1, 999999)):
        missing = listing(actor, class_id=class_id)
        assert missing.status_code == 404 and missing.get_json()["message"] == f"Unknown class '{class_id}'."
    for value in ("0", "abc", str(2**31)):
        assert listing(app1, class_id=value).status_code == 422, value


def test_activity_window_on_the_latest_answer(app: Flask, world: World, shipped_graph: Any) -> None:
    app1 = world.actors["app1"]
    new_students(app1, "never")
    exercise = single_skill_exercise(shipped_graph)
    answer(app1, world.student_b, exercise)
    answer(app1, world.student_a, exercise)  # a's latest answer is the later one
    items = {s["external_id"]: s for s in listing(app1).get_json()["items"]}
    t_b, t_a = items["student-b"]["last_active_at"], items["student-a"]["last_active_at"]
    assert t_b < t_a and items["never"]["last_active_at"] is None

    def window(**query: str) -> list[str]:
        return ids_of(listing(app1, **query))

    assert window(active_since=t_b) == ["student-a", "student-b"]  # inclusive
    assert window(active_since=t_a) == ["student-a"]
    assert window(active_before=t_a) == ["student-b"]  # exclusive
    assert window(active_before=t_b) == []
    assert window(active_since=t_b, active_before=t_a) == ["student-b"]
    assert window(active_since=t_a, active_before=t_b) == []  # an empty window, not an error
    # no offset means UTC; an offset is converted
    assert window(active_since="2000-01-01T00:00:00") == ["student-a", "student-b"]
    assert window(active_before="2000-01-01T01:00:00+01:00") == []
    assert listing(app1, active_since="yesterday").status_code == 422
    # a later answer moves the student in the window
    answer(app1, world.student_b, exercise)
    assert window(active_since=t_a) == ["student-a", "student-b"]


def test_every_sort_with_nulls_last_and_ties_by_id(app: Flask, api: ApiClient, shipped_graph: Any) -> None:
    app_actor = app_actor_of(api)
    made = new_students(app_actor, "m", "B", "a", "z", "é")  # created in this order
    exercise = single_skill_exercise(shipped_graph)
    answer(app_actor, made["z"], exercise)
    answer(app_actor, made["B"], exercise)  # B's answer is the latest
    never = sorted(made[e] for e in ("m", "a", "é"))  # no answers: equal (null) keys, by id
    by_id = {v: k for k, v in made.items()}

    def order(sort: str) -> list[str]:
        return ids_of(listing(app_actor, sort=sort))

    assert order("external_id") == ["B", "a", "m", "z", "é"]  # by code point on every database
    assert ids_of(listing(app_actor)) == order("external_id")  # the default
    assert order("-external_id") == ["é", "z", "m", "a", "B"]
    assert order("created_at") == ["m", "B", "a", "z", "é"]
    assert order("-created_at") == ["é", "z", "a", "B", "m"]
    assert order("last_active_at") == ["z", "B", *(by_id[i] for i in never)]
    assert order("-last_active_at") == ["B", "z", *(by_id[i] for i in never)]
    for bad in ("name", "+external_id", "last_active_at,id", ""):
        refused = listing(app_actor, sort=bad)
        assert refused.status_code == 422 and "sort" in refused.get_json()["errors"]["query"], bad


def test_pages_cover_the_list_once_and_their_bounds(app: Flask, api: ApiClient) -> None:
    app_actor = app_actor_of(api)
    new_students(app_actor, *(f"s-{i}" for i in range(7)))
    everyone = ids_of(listing(app_actor, per_page=200))
    assert len(everyone) == 7
    pages = [listing(app_actor, per_page=3, page=n).get_json() for n in (1, 2, 3, 4, 99)]
    assert [p["next_page"] for p in pages] == [2, 3, None, None, None]
    assert [len(p["items"]) for p in pages] == [3, 3, 1, 0, 0]
    assert all(p["total"] == 7 and p["per_page"] == 3 for p in pages)
    assert [p["page"] for p in pages] == [1, 2, 3, 4, 99]
    assert [s["external_id"] for p in pages for s in p["items"]] == everyone
    exact = listing(app_actor, per_page=7).get_json()  # a full last page has no next one
    assert len(exact["items"]) == 7 and exact["next_page"] is None
    for name, value in (
        ("per_page", 0),
        ("per_page", 201),
        ("per_page", -1),
        ("page", 0),
        ("page", -3),
        ("page", "two"),
        ("page", 2**31),
        ("per_page", "1.5"),
    ):
        refused = listing(app_actor, **{name: value})
        assert refused.status_code == 422 and name in refused.get_json()["errors"]["query"], (name, value)
    assert len(listing(app_actor, per_page=1).get_json()["items"]) == 1
    assert listing(app_actor, per_page=200).status_code == 200


def test_a_listing_logs_the_read_of_each_student_listed(app: Flask, world: World) -> None:
    a = world.actors
    extra = new_students(a["app1"], "x-1")["x-1"]
    assert listing(a["teacher_a"]).status_code == 200
    assert listing(a["app1"], q="x-").status_code == 200
    assert listing(a["student_a"]).status_code == 403
    assert listing(a["admin"], per_page=1, page=99).status_code == 200  # an empty page reads nobody
    with app.app_context():
        rows = db.session.execute(
            sa.select(AccessLogEntry.student_id, AccessLogEntry.actor, AccessLogEntry.what).order_by(
                AccessLogEntry.id
            )
        ).all()
    assert [(sid, actor.split(":")[0], what) for sid, actor, what in rows] == [
        (world.student_a, "teacher", "student list"),
        (extra, "app", "student list"),
    ]


def test_a_page_is_two_queries_whatever_its_size(app: Flask, api: ApiClient) -> None:
    app_actor = app_actor_of(api)
    new_students(app_actor, "warm-up")
    assert listing(app_actor).status_code == 200  # the key's last use is noted once a minute: done now

    def statements(**query: Any) -> list[str]:
        with counted(app) as sent:
            assert listing(app_actor, **query).status_code == 200
        return sent

    few = statements()
    new_students(app_actor, *(f"n-{i}" for i in range(60)))
    many = statements(per_page=200, sort="-last_active_at", q="n")
    assert len(many) == len(few), (few, many)
    # The key, the count, the page, the access-log rows (one statement); SQLite's BEGIN IMMEDIATE too.
    work = [s for s in many if s != "BEGIN IMMEDIATE"]
    assert len(work) == 4, many
    assert work[0].startswith("SELECT api_keys.") and work[1].startswith("SELECT count(*)"), many
    assert work[2].startswith("SELECT students.") and work[3].startswith("INSERT INTO access_log"), many


# --- POST /classes/<id>/students ----------------------------------------------------------------------


def test_enrol_by_id_or_external_id_and_idempotent(app: Flask, world: World) -> None:
    app1 = world.actors["app1"]
    made = new_students(app1, "x-1", "x-2", "x-3")
    first = enrol(app1, world.class_a, student_ids=[made["x-1"]])
    assert first.status_code == 200, first.get_json()
    assert first.get_json() == {"class_id": world.class_a, "enrolled": [made["x-1"]], "already_enrolled": []}
    again = enrol(app1, world.class_a, student_ids=[made["x-1"]]).get_json()
    assert again == {"class_id": world.class_a, "enrolled": [], "already_enrolled": [made["x-1"]]}
    # external ids, cleaned as POST /students does; repeats count once; the order sent is kept
    mixed = enrol(app1, world.class_a, external_ids=[" x-3 ", "student-a", "x-2", "x-3"]).get_json()
    assert mixed["enrolled"] == [made["x-3"], made["x-2"]]
    assert mixed["already_enrolled"] == [world.student_a]
    assert members_of(app, world.class_a) == {world.student_a, *made.values()}
    # a student may be in several classes
    assert enrol(app1, world.class_b, student_ids=[made["x-1"]]).get_json()["enrolled"] == [made["x-1"]]
    assert members_of(app, world.class_b) == {world.student_b, made["x-1"]}


def test_enrol_is_all_or_nothing(app: Flask, world: World) -> None:
    app1 = world.actors["app1"]
    good = new_students(app1, "good-1", "good-2")
    southern = new_students(world.actors["app2"], "southern")["southern"]
    before = members_of(app, world.class_a)
    refused = enrol(app1, world.class_a, student_ids=[good["good-1"], "no-such-id", southern, good["good-2"]])
    assert refused.status_code == 404  # ids that name nothing the caller may see; errors names the field
    body = refused.get_json()
    message = body["errors"]["json"]["student_ids"][0]
    assert message == body["message"]
    assert "'no-such-id'" in message and repr(southern) in message and good["good-1"] not in message
    assert "Nothing was enrolled" in message
    assert members_of(app, world.class_a) == before
    # unknown external ids: the students are not created here, and the message says where they are
    unknown = enrol(app1, world.class_a, external_ids=["good-1", "brand-new", "southern"])
    assert unknown.status_code == 404
    message = unknown.get_json()["errors"]["json"]["external_ids"][0]
    assert "'brand-new', 'southern'" in message and "POST /api/v1/students" in message
    assert members_of(app, world.class_a) == before
    assert ids_of(listing(app1, external_id="brand-new")) == []
    # many bad ones: the first few are named, the rest counted
    many = enrol(app1, world.class_a, student_ids=[f"bad-{i:03}" for i in range(25)]).get_json()["message"]
    assert "'bad-000'" in many and "'bad-009'" in many and "'bad-010'" not in many and "and 15 more" in many


def test_simultaneous_enrolments_add_each_student_once(app: Flask, server: Server) -> None:
    """Overlapping enrolments at once, on a multi-process server: every one succeeds, and each student is
    reported added by exactly one of them (the others see them enrolled already)."""
    port, key = server.gunicorn.port, issue_key(app, "roster-app")
    with app.app_context():
        school = db.session.scalars(sa.select(School).where(School.name == "roster-app school")).one()
        teacher = create_staff_user(db.session(), school, "t@roster.test", "T", PASSWORD, role=Role.TEACHER)
        class_id = create_class(db.session(), teacher, "Busy class").id
    students = [new_student(port, key, f"busy-{i}") for i in range(40)]
    path = f"/api/v1/classes/{class_id}/students"
    # Twelve requests, each of a different overlapping half of the students (in different orders).
    bodies = [{"student_ids": (students[i * 3 :] + students[: i * 3])[:20]} for i in range(12)]
    results = run_all([lambda body=body: call(port, key, "POST", path, body) for body in bodies], threads=12)
    assert [status for status, _ in results] == [200] * 12, results
    added = Counter(sid for _, body in results for sid in body["enrolled"])
    assert set(added) == members_of(app, class_id) and max(added.values()) == 1
    for (_, body), sent in zip(results, bodies, strict=True):
        assert sorted(body["enrolled"] + body["already_enrolled"]) == sorted(sent["student_ids"])


def test_enrol_body_rules(app: Flask, world: World) -> None:
    app1 = world.actors["app1"]
    for body, field in (
        ({}, "_schema"),
        ({"student_ids": [world.student_a], "external_ids": ["student-a"]}, "_schema"),
        ({"student_ids": []}, "student_ids"),
        ({"external_ids": []}, "external_ids"),
        ({"student_ids": ["x"] * 501}, "student_ids"),
        ({"student_ids": [""]}, "student_ids"),
        ({"student_ids": ["x" * 37]}, "student_ids"),
        ({"student_ids": [12]}, "student_ids"),
        ({"external_ids": ["  "]}, "external_ids"),
        ({"external_ids": "student-a"}, "external_ids"),
        ({"student_ids": [world.student_a], "create": True}, "create"),
    ):
        refused = enrol(app1, world.class_a, **body)
        assert refused.status_code == 422, body
        assert field in refused.get_json()["errors"]["json"], (body, refused.get_json())
    assert enrol(app1, world.class_a, student_ids=[world.student_b] * 500).status_code == 200


def test_who_may_enrol_into_which_class(app: Flask, world: World) -> None:
    a = world.actors
    made = new_students(a["app1"], "x-1", "x-2", "x-3")
    # apps and admins: any class of the school
    assert enrol(a["admin"], world.class_b, student_ids=[made["x-1"]]).status_code == 200
    assert enrol(a["app1"], world.class_b, student_ids=[made["x-2"]]).status_code == 200
    # a teacher: their own class only (another's is not found, as if it did not exist)
    assert enrol(a["teacher_a"], world.class_a, external_ids=["x-3"]).status_code == 200
    other = enrol(a["teacher_a"], world.class_b, external_ids=["x-3"])
    assert other.status_code == 404 and other.get_json()["message"] == f"Unknown class '{world.class_b}'."
    assert enrol(a["teacher_other"], world.class_a, external_ids=["x-3"]).status_code == 404
    # another school's app; unknown classes
    assert enrol(a["app2"], world.class_a, student_ids=[world.student_a]).status_code == 404
    assert enrol(a["app1"], 999999, student_ids=[world.student_a]).status_code == 404
    for student in ("student_a", "student_b"):
        refused = enrol(a[student], world.class_a, student_ids=[world.student_a])
        assert refused.status_code == 403, refused.get_json()
        message = refused.get_json()["message"]
        assert message == "A student may not enrol students into a class or remove them."
    assert enrol(a["anonymous"], world.class_a, student_ids=[world.student_a]).status_code == 401
    # the teacher now sees the student they enrolled
    assert ids_of(listing(a["teacher_a"])) == ["student-a", "x-3"]
    assert members_of(app, world.class_b) == {world.student_b, made["x-1"], made["x-2"]}


def test_the_class_detail_and_report_show_a_new_member(app: Flask, world: World) -> None:
    app1, teacher = world.actors["app1"], world.actors["teacher_a"]
    new = new_students(app1, "newcomer")["newcomer"]
    assert enrol(app1, world.class_a, student_ids=[new]).status_code == 200
    detail = teacher.request("GET", f"/api/v1/classes/{world.class_a}").get_json()
    assert [s["external_id"] for s in detail["students"]] == ["newcomer", "student-a"]
    assert detail["student_count"] == 2
    report = teacher.request("GET", f"/api/v1/classes/{world.class_a}/report").get_json()
    assert sorted(s["student_id"] for s in report["students"]) == sorted([new, world.student_a])
    page = teacher.request("GET", f"/classes/{world.class_a}").get_data(as_text=True)
    assert f"/students/{new}" in page and ">newcomer</a>" in page
    assert teacher.request("GET", f"{STUDENTS}/{new}/progress").status_code == 200


def test_api_enrolment_issues_no_code_and_a_code_holder_signs_in_through_the_new_class(
    app: Flask, world: World
) -> None:
    app1 = world.actors["app1"]
    new = new_students(app1, "app-only")["app-only"]
    assert enrol(app1, world.class_a, student_ids=[new, world.student_b]).status_code == 200
    with app.app_context():
        assert db.session.get(StudentCredential, new) is None  # an app's student practises through the app
    # Student B (who has a code, from flask enroll) is now in class A too: A's join code works for them.
    fresh = Actor("b-again", app.test_client())
    assert fresh.sign_in_student(world.join_a, world.code_b).status_code == 302
    assert remove(app1, world.class_a, world.student_b).status_code == 200
    refused = Actor("b-later", app.test_client())
    assert refused.sign_in_student(world.join_a, world.code_b).status_code == 401
    assert Actor("b-own", app.test_client()).sign_in_student(world.join_b, world.code_b).status_code == 302


# --- DELETE /classes/<id>/students/<student_id> -------------------------------------------------------


def test_remove_from_a_class(app: Flask, world: World) -> None:
    a = world.actors
    made = new_students(a["app1"], "x-1")
    assert enrol(a["app1"], world.class_a, student_ids=[made["x-1"]]).status_code == 200
    removed = remove(a["teacher_a"], world.class_a, made["x-1"])
    assert removed.status_code == 200, removed.get_json()
    assert removed.get_json() == {"class_id": world.class_a, "student_id": made["x-1"], "removed": True}
    assert members_of(app, world.class_a) == {world.student_a}
    # the student and their data stay
    assert a["app1"].request("GET", f"{STUDENTS}/{made['x-1']}").status_code == 200
    assert ids_of(listing(a["app1"], external_id="x-1")) == ["x-1"]
    # not (or no longer) in the class: 404
    again = remove(a["teacher_a"], world.class_a, made["x-1"])
    assert again.status_code == 404
    assert again.get_json()["message"] == f"Student {made['x-1']!r} is not in class {world.class_a}."
    assert remove(a["app1"], world.class_a, "no-such-student").status_code == 404
    assert remove(a["app1"], world.class_a, world.student_b).status_code == 404  # in class B, not A
    detail = a["teacher_a"].request("GET", f"/api/v1/classes/{world.class_a}").get_json()
    assert [s["external_id"] for s in detail["students"]] == ["student-a"]


def test_who_may_remove_from_which_class(app: Flask, world: World) -> None:
    a = world.actors
    for student in ("student_a", "student_b"):
        assert remove(a[student], world.class_a, world.student_a).status_code == 403
    assert remove(a["anonymous"], world.class_a, world.student_a).status_code == 401
    assert remove(a["teacher_other"], world.class_a, world.student_a).status_code == 404
    assert remove(a["teacher_a"], world.class_b, world.student_b).status_code == 404
    assert remove(a["app2"], world.class_a, world.student_a).status_code == 404
    assert members_of(app, world.class_a) == {world.student_a}
    assert members_of(app, world.class_b) == {world.student_b}
    assert remove(a["admin"], world.class_b, world.student_b).status_code == 200
    assert remove(a["app1"], world.class_a, world.student_a).status_code == 200
    assert members_of(app, world.class_a) == members_of(app, world.class_b) == set()
    # a teacher whose class is empty lists nobody
    assert listing(a["teacher_a"]).get_json()["total"] == 0
