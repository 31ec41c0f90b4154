"""Registering an LMS (/admin/lms, `flask lti ...`) and the tool's key set (/.well-known/jwks.json)."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import jwt
import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import expect

from app.extensions import db
from app.models import LtiDeployment, LtiPlatform, LtiToolKey
from tests.conftest import PASSWORD, World
from tests.web.screens import check_page, on_path

FORM = {
    "name": "North Moodle",
    "issuer": "https://moodle.north.test",
    "client_id": "abc123",
    "deployment_ids": "1 7",
    "auth_login_url": "https://moodle.north.test/mod/lti/auth.php",
    "auth_token_url": "https://moodle.north.test/mod/lti/token.php",
    "key_set_url": "https://moodle.north.test/mod/lti/certs.php",
}


def platform_rows(app: Flask) -> list[tuple[str, str]]:
    with app.app_context():
        rows = [tuple(r) for r in db.session.execute(sa.select(LtiPlatform.name, LtiPlatform.issuer)).all()]
        db.session.commit()
    return rows  # type: ignore[return-value]


def test_an_admin_registers_a_platform_and_sees_what_to_give_the_lms(app: Flask, world: World) -> None:
    admin = world.actors["admin"]
    admin.refresh_csrf("/admin/lms")
    page = admin.request("GET", "/admin/lms")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for url in (
        "http://localhost/lti/login",
        "http://localhost/lti/launch",
        "http://localhost/.well-known/jwks.json",
    ):
        assert url in text
    canvas = json.loads(
        html.unescape(re.search(r'<pre class="config-json"><code>(.*?)</code>', text, re.S).group(1))
    )
    assert canvas["oidc_initiation_url"] == "http://localhost/lti/login"
    assert canvas["public_jwk_url"] == "http://localhost/.well-known/jwks.json"
    assert canvas["extensions"][0]["privacy_level"] == "anonymous"

    created = admin.request("POST", "/admin/lms", form=FORM)
    assert created.status_code == 201
    assert "North Moodle" in created.get_data(as_text=True)
    with app.app_context():
        platform = db.session.scalar(sa.select(LtiPlatform))
        assert platform is not None and platform.school_id == world.north and not platform.accept_names
        deployments = set(db.session.scalars(sa.select(LtiDeployment.deployment_id)))
        assert deployments == {"1", "7"}
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LtiToolKey)) == 1  # the first key
        db.session.commit()
    changes = admin.request("GET", "/admin/changes").get_data(as_text=True)
    assert "LMS registered" in changes and "North Moodle" in changes  # in the school's change log

    again = admin.request("POST", "/admin/lms", form=FORM)
    assert again.status_code == 409 and "already registered" in again.get_data(as_text=True)
    plain = admin.request(
        "POST", "/admin/lms", form={**FORM, "client_id": "x", "key_set_url": "http://lms.test/k"}
    )
    assert plain.status_code == 400 and "must be an https:// URL" in plain.get_data(as_text=True)
    both = admin.request("POST", "/admin/lms", form={**FORM, "client_id": "y", "key_set": '{"keys": []}'})
    assert both.status_code == 400
    assert platform_rows(app) == [
        ("North Moodle", "https://moodle.north.test")
    ]  # the refused ones wrote nothing

    teacher = world.actors["teacher_a"]
    teacher.refresh_csrf("/classes")
    assert teacher.request("GET", "/admin/lms").status_code == 403
    assert teacher.request("POST", "/admin/lms", form={**FORM, "client_id": "z"}).status_code == 403
    assert len(platform_rows(app)) == 1


def test_the_key_set_publishes_every_unretired_key_and_the_newest_signs(
    app: Flask, client: Any, runner: Any, school: str
) -> None:
    assert client.get("/.well-known/jwks.json").get_json() == {"keys": []}
    first = runner.invoke(args=["lti", "rotate-key"])
    second = runner.invoke(args=["lti", "rotate-key"])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    with app.app_context():
        keys = list(db.session.scalars(sa.select(LtiToolKey).order_by(LtiToolKey.id)))
        db.session.commit()
    old, new = keys
    published = client.get("/.well-known/jwks.json").get_json()["keys"]
    assert [k["kid"] for k in published] == [new.kid, old.kid]
    assert all(k["alg"] == "RS256" and k["use"] == "sig" and "d" not in k for k in published)
    # A token the newest key signs verifies against the published key with its kid.
    token = jwt.encode({"iss": "tutor"}, new.private_key_pem, algorithm="RS256", headers={"kid": new.kid})
    public = jwt.PyJWK(published[0]).key
    assert jwt.decode(token, public, algorithms=["RS256"]) == {"iss": "tutor"}

    refused = runner.invoke(args=["lti", "rotate-key", "--retire", new.kid])
    assert refused.exit_code != 0 and "signs now" in refused.output
    retired = runner.invoke(args=["lti", "rotate-key", "--retire", old.kid])
    assert retired.exit_code == 0, retired.output
    assert [k["kid"] for k in client.get("/.well-known/jwks.json").get_json()["keys"]] == [new.kid]


def test_the_cli_refuses_a_bad_registration_and_writes_nothing(app: Flask, runner: Any, school: str) -> None:
    args = ["lti", "register-platform", "--name", "LMS", "--issuer", "https://lms.test", "--client-id", "c"]
    urls = ["--auth-login-url", "https://lms.test/auth", "--auth-token-url", "https://lms.test/token"]
    no_keys = runner.invoke(args=[*args, "--deployment-id", "d", *urls])
    assert no_keys.exit_code != 0 and "key set URL or its key set" in no_keys.output
    bad_url = runner.invoke(
        args=[*args, "--deployment-id", "d", "--auth-login-url", "ftp://lms.test/a", "--auth-token-url", "x"]
        + ["--key-set-url", "https://lms.test/jwks"]
    )
    assert bad_url.exit_code != 0 and "must be an https:// URL" in bad_url.output
    assert platform_rows(app) == []


def test_the_lms_page_in_a_browser(app: Flask, world: World, page: Any) -> None:
    """Registering a platform on the page; checked at 390 and 1280 px (axe-core, no sideways scrolling)."""
    page.goto("/login?next=/admin/lms")
    page.get_by_label("Email").fill("admin@north.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(on_path("/admin/lms"))
    assert page.get_by_role("link", name="LMS").count() == 1  # in the navigation, for admins
    check_page(page, "admin-lms-empty")
    labels = {
        "Name": FORM["name"],
        "Issuer": FORM["issuer"],
        "Client ID": FORM["client_id"],
        "Deployment ID(s)": FORM["deployment_ids"],
        "Authentication request URL": FORM["auth_login_url"],
        "Access token URL": FORM["auth_token_url"],
        "Public keyset URL": FORM["key_set_url"],
    }
    for label, value in labels.items():
        page.get_by_label(re.compile("^" + re.escape(label))).fill(value)
    page.get_by_role("button", name="Register").click()
    page.wait_for_load_state()
    expect(page.locator("ul.platforms")).to_contain_text("North Moodle")
    expect(page.locator("ul.platforms")).to_contain_text("1, 7")
    check_page(page, "admin-lms")
