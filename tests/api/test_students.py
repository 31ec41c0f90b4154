"""Students and authentication through the real app and database."""

import sqlalchemy as sa

from app.extensions import db
from app.models import ApiKey, Student, utcnow
from tests.conftest import ApiClient


def test_create_student_is_idempotent(api: ApiClient) -> None:
    first = api.post("/api/v1/students", json={"external_id": "pseudo-42"})
    assert first.status_code == 201
    body = first.get_json()
    assert body["external_id"] == "pseudo-42" and len(body["id"]) == 36
    again = api.post("/api/v1/students", json={"external_id": "pseudo-42"})
    assert again.status_code == 200 and again.get_json()["id"] == body["id"]
    assert api.get(f"/api/v1/students/{body['id']}").get_json()["external_id"] == "pseudo-42"


def test_apps_only_see_their_own_students(app, api: ApiClient, other_api: ApiClient, shipped_graph) -> None:
    mine = api.new_student("same-external-id")
    theirs = other_api.new_student("same-external-id")
    assert mine != theirs  # external ids are unique per app, not globally
    for path in ("", "/progress", "/next-exercise"):
        response = other_api.get(f"/api/v1/students/{mine}{path}")
        assert response.status_code == 404, path
        assert response.get_json()["message"] == f"Unknown student '{mine}'."
    answer = other_api.post(
        f"/api/v1/students/{mine}/responses",
        json={"exercise_id": next(iter(shipped_graph.exercises)), "correct": True},
    )
    assert answer.status_code == 404


def test_invalid_student_payloads(app, api: ApiClient) -> None:
    for payload, field in (
        ({}, "external_id"),
        ({"external_id": ""}, "external_id"),
        ({"external_id": "x" * 201}, "external_id"),
        ({"external_id": 12}, "external_id"),
        ({"external_id": "a", "name": "Ann"}, "name"),
    ):
        response = api.post("/api/v1/students", json=payload)
        assert response.status_code == 422, payload
        body = response.get_json()
        assert body["code"] == 422 and body["status"] == "Unprocessable Entity"
        assert field in body["errors"]["json"] and body["message"]
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Student)) == 0


def test_missing_or_bad_key_is_401(app, client, api: ApiClient) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer tk_deadbeef_nope"},
        {"Authorization": "Bearer garbage"},
    ):
        response = client.get("/api/v1/skills", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.get_json()["code"] == 401 and response.get_json()["message"]


def test_revoked_key_is_refused_and_use_is_recorded(app, api: ApiClient) -> None:
    assert api.get("/api/v1/skills").status_code == 200
    with app.app_context():
        key = db.session.scalar(sa.select(ApiKey))
        assert key.last_used_at is not None and key.key_hash not in api.headers["Authorization"]
        key.revoked_at = utcnow()
        db.session.commit()
    assert api.get("/api/v1/skills").status_code == 401


def test_unknown_routes_and_methods_use_the_error_shape(api: ApiClient, client) -> None:
    for response, code in (
        (api.get("/api/v1/nothing"), 404),
        (client.get("/api/nowhere"), 404),
        (api.client.delete("/api/v1/skills", headers=api.headers), 405),
    ):
        body = response.get_json()
        assert response.status_code == code
        assert body["code"] == code and body["status"] and body["message"]


def test_openapi_document_is_served(client) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["info"]["title"] == "Adaptive tutor API"
    for path in (
        "/api/v1/students",
        "/api/v1/students/{student_id}/next-exercise",
        "/api/v1/students/{student_id}/responses",
        "/api/v1/students/{student_id}/progress",
        "/api/v1/skills",
        "/api/v1/exercises/{exercise_id}",
    ):
        assert path in spec["paths"], path
    assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"


def test_unexpected_errors_are_json_500s(tmp_path) -> None:
    from app import create_app

    app = create_app(
        {
            "TESTING": True,
            "PROPAGATE_EXCEPTIONS": False,
            "SECRET_KEY": "t",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite3'}",
        }
    )

    @app.route("/api/boom")
    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError("secret detail")

    response = app.test_client().get("/api/boom")
    body = response.get_json()
    assert response.status_code == 500 and body["code"] == 500
    assert body["status"] == "Internal Server Error" and "secret detail" not in body["message"]
    page = app.test_client().get("/boom")
    assert page.status_code == 500 and page.mimetype == "text/html"
    assert "secret detail" not in page.get_data(as_text=True)


def test_pages_outside_the_api_get_html_errors(client) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "<h1>Not Found</h1>" in response.get_data(as_text=True)
