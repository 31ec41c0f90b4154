"""A real LTI 1.3 platform for the launch tests: the ``lti1p3platform`` package (an LMS's side of LTI 1.3:
third-party initiated login, the authentication response, id_tokens signed with the platform's key) behind a
small Flask wrapper served over real HTTP. The wrapper is test code; the protocol is the package's.

``/start/<user>?mode=...`` starts a launch the way an LMS's link does (a redirect to the tool's login URL),
and ``/course/<user>`` does it inside an iframe of a course page;
``/authorize`` answers the tool's authentication request with the package's auto-submitting form of id_token
and state. ``mode`` makes the failures the tool must refuse, each from a token the package built: ``tampered``
(payload changed after signing), ``expired``, ``wrong_audience``, ``unknown_deployment``, ``foreign_key``
(signed with a key that is not the platform's, under the platform's kid).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, jsonify, redirect, render_template_string, request
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract
from lti1p3platform.oidc_login import OIDCLoginAbstract
from lti1p3platform.registration import Registration
from lti1p3platform.request import Request, TRequest

LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
CLIENT_ID = "tutor-client-1"
DEPLOYMENT_ID = "deployment-1"
COURSE = {"id": "course-101", "title": "Algebra 1 (period 3)"}

# The package's own launch form (lti1p3platform/framework/templates/launch.html); its template loader needs
# pkg_resources, which current setuptools no longer ships, so the same form is rendered here.
LAUNCH_FORM = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>LTI Tool Launch</title></head>
<body><form method="POST" action="{{ launch_url }}" id="form">
<input type="hidden" name="id_token" value="{{ id_token }}">
<input type="hidden" name="state" value="{{ state }}">
</form><script>document.getElementById("form").submit();</script></body></html>"""


def new_private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@dataclass
class User:
    sub: str
    roles: list[str]
    name: str
    email: str


@dataclass
class Platform:
    """What the wrapper knows: its base URL (its issuer), the tool's URLs, its users."""

    tool_base: str
    base: str = ""
    private_key: str = field(default_factory=new_private_key)
    users: dict[str, User] = field(default_factory=dict)
    course: dict[str, str] = field(default_factory=lambda: dict(COURSE))

    @property
    def issuer(self) -> str:
        return self.base

    def registration(self) -> Registration:
        return (
            Registration()
            .set_iss(self.issuer)
            .set_client_id(CLIENT_ID)
            .set_deployment_id(DEPLOYMENT_ID)
            .set_oidc_login_url(f"{self.tool_base}/lti/login")
            .set_launch_url(f"{self.tool_base}/lti/launch")
            .set_tool_key_set_url(f"{self.tool_base}/.well-known/jwks.json")
            .set_platform_private_key(self.private_key)
            .set_platform_public_key(public_pem(self.private_key))
        )


class _Request(Request):
    def build_metadata(self, req: Any) -> TRequest:
        return {
            "method": req.method,
            "form_data": req.form.to_dict(),
            "get_data": req.args.to_dict(),
            "headers": req.headers,
            "content_type": req.content_type,
            "path": req.path,
            "json": None,
        }


class _Conf(LTI1P3PlatformConfAbstract):
    def init_platform_config(self, **kwargs: Any) -> None:
        self._registration = kwargs["registration"]

    def get_registration_by_params(self, **kwargs: Any) -> Registration:
        return self._registration  # type: ignore[return-value]


class _Login(OIDCLoginAbstract):
    def set_lti_message_hint(self, **kwargs: Any) -> None:
        self._lti_message_hint = kwargs["hint"]

    def get_redirect(self, url: str) -> Any:
        return redirect(url)


class _Launch(LTIAdvantageMessageLaunchAbstract):
    def render_launch_form(self, launch_data: dict[str, Any], **kwargs: Any) -> Any:
        return render_template_string(LAUNCH_FORM, **launch_data)


def _tampered(token: str) -> str:
    """The same signature over a changed payload (another user)."""
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["sub"] = "someone-else"
    changed = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    return f"{header}.{changed}.{signature}"


def platform_app(platform: Platform) -> Flask:
    app = Flask("lti_test_platform")

    def conf() -> _Conf:
        return _Conf(registration=platform.registration())

    @app.get("/course/<user>")
    def course(user: str) -> Any:
        """A course page of the LMS with the tool's link opened inside an iframe, as LMSs embed tools."""
        return render_template_string(
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Course</title></head><body>'
            "<h1>Algebra 1</h1>"
            '<iframe title="Tutor" src="/start/{{ user }}" width="1000" height="900"></iframe>'
            "</body></html>",
            user=user,
        )

    @app.get("/replay")
    def replay() -> Any:
        """Post a captured launch form again (from this site, as the platform's own page did)."""
        fields = dict(parse_qsl(request.args["form"]))
        return render_template_string(
            LAUNCH_FORM, launch_url=request.args["to"], id_token=fields["id_token"], state=fields["state"]
        )

    @app.get("/jwks")
    def jwks() -> Any:
        config = conf()
        config.get_registration()
        return jsonify(config.get_jwks())

    @app.get("/start/<user>")
    def start(user: str) -> Any:
        login = _Login(_Request(request), conf())
        login.set_lti_message_hint(hint=f"{user}|{request.args.get('mode', 'valid')}")
        return login.initiate_login(platform.users[user].sub)

    @app.get("/authorize")
    def authorize() -> Any:
        user_key, _, mode = request.args["lti_message_hint"].partition("|")
        user = platform.users[user_key]
        launch = _Launch(_Request(request), conf())
        launch.set_user_data(user.sub, user.roles, full_name=user.name, email_address=user.email)
        launch.set_launch_context_claim(platform.course["id"], context_title=platform.course["title"])
        launch.set_resource_link_claim("link-1", title="Fractions practice")
        launch.set_ags(
            lineitems_url=f"{platform.base}/ags/{platform.course['id']}/lineitems",
            lineitem_url=f"{platform.base}/ags/{platform.course['id']}/lineitems/1",
        )
        launch.set_nrps(f"{platform.base}/nrps/{platform.course['id']}/memberships")
        if mode == "valid":
            return launch.lti_launch()
        if mode == "expired":
            launch.set_id_token_expiration(-120)  # exp two minutes before iat
            return launch.lti_launch()
        # The other failures: the package's launch message, changed before or after it signs it.
        registration = launch._registration = conf().get_registration()  # noqa: SLF001 - as lti_launch()
        launch.validate_preflight_response(request.args.to_dict())
        if mode == "tampered":
            data = launch.generate_launch_request()
            token = _tampered(data["id_token"])
        else:
            message, _ = launch.get_launch_data()
            if mode == "wrong_audience":
                message["aud"] = message["azp"] = "another-tool"
            elif mode == "unknown_deployment":
                message["https://purl.imsglobal.org/spec/lti/claim/deployment_id"] = "deployment-unknown"
            if mode == "foreign_key":
                token = Registration.encode_and_sign(
                    message, new_private_key(), headers={"kid": registration.get_kid()}, expiration=300
                )
            else:
                token = registration.platform_encode_and_sign(message, expiration=300)
        return render_template_string(
            LAUNCH_FORM, launch_url=request.args["redirect_uri"], id_token=token, state=request.args["state"]
        )

    return app
