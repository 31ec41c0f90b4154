"""A real LTI 1.3 platform for the LTI tests: the ``lti1p3platform`` package (an LMS's side of LTI 1.3 and
LTI Advantage) behind a small Flask wrapper served over real HTTP. The wrapper is test code; the protocol is
the package's: third-party initiated login, the authentication response and its id_tokens
(``LTIAdvantageMessageLaunchAbstract``, with the AGS, NRPS and deep linking claims), the OAuth 2 token
endpoint (``LTI1P3PlatformConfAbstract.get_access_token``, which checks the tool's signed assertion against
the tool's key set), the deep linking response's validation (``validate_deeplinking_resp``), the AGS score
endpoint (``AssignmentsGradesService.handle_update_score``, which checks the bearer token and its scope) and
the NRPS membership endpoint (``NamesRoleProvisioningService.handle_get_members``). The package leaves the
storage of line items, scores and members to the platform (abstract methods): here they are in memory, on
``Platform``, for the tests to read.

``/start/<user>?mode=...&link=...`` starts a launch the way an LMS's link does (a redirect to the tool's login
URL), and ``/course/<user>`` does it inside an iframe of a course page; ``/authorize`` answers the tool's
authentication request with the package's auto-submitting form of id_token and state. ``link`` picks the
course's link (``link-1``, or one a deep linking response made); ``mode=deeplink`` sends an
LtiDeepLinkingRequest instead, whose answer comes back to ``/deep-link-return``. The other modes make the
failures the tool must refuse, each from a token the package built: ``tampered`` (payload changed after
signing), ``expired``, ``wrong_audience``, ``unknown_deployment``, ``foreign_key`` (signed with a key that is
not the platform's, under the platform's kid). ``Platform.down`` makes the token, score and membership
endpoints answer 503, as an LMS being restarted does.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, jsonify, redirect, render_template_string, request
from lti1p3platform.exceptions import (
    LineItemNotFoundException,
    LtiDeepLinkingResponseException,
    LtiException,
    MissingRequiredClaim,
    UnsupportedGrantType,
)
from lti1p3platform.lineitem import TLineItem
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.membership import Context
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract
from lti1p3platform.oidc_login import OIDCLoginAbstract
from lti1p3platform.registration import Registration
from lti1p3platform.request import Request, TRequest
from lti1p3platform.response import Response as ServiceResponse
from lti1p3platform.score import TScore, UpdateScoreStatus
from lti1p3platform.service_connector import (
    AssignmentsGradesService,
    NamesRoleProvisioningService,
    TPage,
)

LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
MENTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Mentor"
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
class Link:
    """A link to the tool in the course: its resource link id, title, line item (its id) and custom
    parameters (a deep linking response's)."""

    id: str
    title: str
    lineitem: str | None = None
    custom: dict[str, str] = field(default_factory=dict)


@dataclass
class Platform:
    """What the wrapper knows: its base URL (its issuer), the tool's URLs, its users, the course's links,
    line items and class list (user key -> NRPS status; by default every user, active), and what it
    received (scores, deep linking responses, service requests while it was down)."""

    tool_base: str
    base: str = ""
    private_key: str = field(default_factory=new_private_key)
    users: dict[str, User] = field(default_factory=dict)
    course: dict[str, str] = field(default_factory=lambda: dict(COURSE))
    links: dict[str, Link] = field(
        default_factory=lambda: {"link-1": Link("link-1", "Fractions practice", lineitem="1")}
    )
    lineitems: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"1": {"label": "Fractions practice", "scoreMaximum": 100}}
    )
    roster: dict[str, str] | None = None  # None: every user, active
    scores: list[dict[str, Any]] = field(default_factory=list)
    deep_link_responses: list[dict[str, Any]] = field(default_factory=list)
    refused_while_down: list[str] = field(default_factory=list)
    down: bool = False

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
            .set_deeplink_launch_url(f"{self.tool_base}/lti/launch")
            .set_tool_key_set_url(f"{self.tool_base}/.well-known/jwks.json")
            .set_platform_private_key(self.private_key)
            .set_platform_public_key(public_pem(self.private_key))
        )

    def lineitem_url(self, item: str) -> str:
        return f"{self.base}/ags/{self.course['id']}/lineitems/{item}"

    def scores_for(self, link: str) -> list[dict[str, Any]]:
        """The scores received for a link's line item, in order."""
        item = self.links[link].lineitem
        return [s for s in self.scores if s["lineitem"] == item]


class _Request(Request):
    def build_metadata(self, req: Any) -> TRequest:
        return {
            "method": req.method,
            "form_data": req.form.to_dict(),
            "get_data": req.args.to_dict(),
            "headers": req.headers,
            "content_type": req.content_type,
            "path": req.path,
            "json": req.get_json(silent=True),
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


class _Grades(AssignmentsGradesService):
    """The package's AGS endpoints over the platform's line items and scores (in memory)."""

    def __init__(self, req: Request, conf: LTI1P3PlatformConfAbstract, platform: Platform) -> None:
        base = f"{platform.base}/ags/{platform.course['id']}/lineitems"
        super().__init__(req, conf, base)
        self.platform = platform

    def _item(self, line_item_id: str) -> TLineItem:
        found = self.platform.lineitems.get(line_item_id)
        if found is None:
            raise LineItemNotFoundException(line_item_id)
        return {"id": self.platform.lineitem_url(line_item_id), **found}  # type: ignore[typeddict-item]

    def find_lineitems(self, page: int = 1, limit: int | None = None, **filters: Any) -> TPage:
        return {"content": [self._item(i) for i in self.platform.lineitems], "has_next": False, "next": None}

    def find_lineitem(self, line_item_id: str) -> TLineItem:
        return self._item(line_item_id)

    def create_lineitem(self, creation_data: TLineItem) -> TLineItem:
        item = str(len(self.platform.lineitems) + 1)
        self.platform.lineitems[item] = dict(creation_data)
        return self._item(item)

    def update_lineitem(self, update_data: TLineItem) -> TLineItem:
        item = str(update_data["id"]).rsplit("/", 1)[-1]
        self._item(item)
        self.platform.lineitems[item].update({k: v for k, v in update_data.items() if k != "id"})
        return self._item(item)

    def delete_lineitem(self, line_item_id: str) -> None:
        self._item(line_item_id)
        del self.platform.lineitems[line_item_id]

    def update_score(self, line_item_id: str, score: TScore) -> UpdateScoreStatus:
        self._item(line_item_id)
        known = {u.sub for u in self.platform.users.values()}
        if not isinstance(score, dict) or score.get("userId") not in known:
            return UpdateScoreStatus.NOTAPPLIED
        self.platform.scores.append({"lineitem": line_item_id, **score})
        return UpdateScoreStatus.SUCCESS

    def get_results(
        self, line_item_id: str, page: int = 1, limit: int | None = None, user_id: str | None = None
    ) -> TPage:
        self._item(line_item_id)
        results = [s for s in self.platform.scores if s["lineitem"] == line_item_id]
        return {"content": results, "has_next": False, "next": None}


class _Members(NamesRoleProvisioningService):
    """The package's NRPS endpoint over the platform's class list: every field an LMS may share (names,
    emails), so a test can check the tool keeps none of them."""

    def __init__(self, req: Request, conf: LTI1P3PlatformConfAbstract, platform: Platform) -> None:
        super().__init__(req, conf, f"{platform.base}/nrps/{platform.course['id']}/memberships")
        self.platform = platform

    def get_context_by_id(self) -> Context:
        return Context(id=self.platform.course["id"], label="ALG1", title=self.platform.course["title"])

    def get_member_data_page(self, page: int = 1, limit: int | None = None, **filters: Any) -> TPage:
        members = []
        roster = self.platform.roster
        listed = roster if roster is not None else dict.fromkeys(self.platform.users, "Active")
        for key, status in listed.items():
            user = self.platform.users[key]
            given, _, family = user.name.partition(" ")
            members.append(
                {
                    "user_id": user.sub,
                    "roles": user.roles,
                    "status": status,
                    "name": user.name,
                    "given_name": given,
                    "family_name": family,
                    "email": user.email,
                }
            )
        return {"content": members, "has_next": False, "next": None}

    def is_resource_link_valid(self, context_id: str, resource_link_id: str) -> bool:
        return resource_link_id in self.platform.links


def _answer(response: ServiceResponse) -> Response:
    """The package's service response as HTTP."""
    if response.result is None:
        body = json.dumps({"message": response.message}) if response.code >= 400 else ""
        return Response(body, status=response.code, mimetype="application/json" if body else None)
    return Response(json.dumps(response.result), status=response.code, mimetype=response.media_type)


def _tampered(token: str) -> str:
    """The same signature over a changed payload (another user)."""
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["sub"] = "someone-else"
    changed = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    return f"{header}.{changed}.{signature}"


ADDED = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Added</title></head><body>
<h1>Added to the course</h1><ul>
{% for link in links %}<li data-link="{{ link.id }}">{{ link.title }}</li>{% endfor %}
</ul></body></html>"""


def platform_app(platform: Platform) -> Flask:
    app = Flask("lti_test_platform")

    def conf() -> _Conf:
        return _Conf(registration=platform.registration())

    def down(what: str) -> Response | None:
        if not platform.down:
            return None
        platform.refused_while_down.append(what)
        return Response('{"message": "down for maintenance"}', status=503, mimetype="application/json")

    @app.get("/course/<user>")
    def course(user: str) -> Any:
        """A course page of the LMS with the tool's link opened inside an iframe, as LMSs embed tools."""
        return render_template_string(
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Course</title></head><body>'
            "<h1>Algebra 1</h1>"
            '<iframe title="Tutor" src="/start/{{ user }}?{{ query }}" width="1000" height="900"></iframe>'
            "</body></html>",
            user=user,
            query=request.query_string.decode(),
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
        mode, link = request.args.get("mode", "valid"), request.args.get("link", "link-1")
        login.set_lti_message_hint(hint=f"{user}|{mode}|{link}")
        return login.initiate_login(platform.users[user].sub)

    @app.get("/authorize")
    def authorize() -> Any:
        user_key, mode, link_id = request.args["lti_message_hint"].split("|")
        user = platform.users[user_key]
        launch = _Launch(_Request(request), conf())
        launch.set_user_data(user.sub, user.roles, full_name=user.name, email_address=user.email)
        launch.set_launch_context_claim(platform.course["id"], context_title=platform.course["title"])
        launch.set_nrps(f"{platform.base}/nrps/{platform.course['id']}/memberships")
        if mode == "deeplink":  # an instructor adds the tool to the course: an LtiDeepLinkingRequest
            launch.set_dl(
                f"{platform.base}/deep-link-return",
                title="Add a tool",
                accept_types={"ltiResourceLink"},
                extra_data={"placement": "assignment-7"},
            )
            return launch.lti_launch()
        link = platform.links[link_id]
        launch.set_resource_link_claim(link.id, title=link.title)
        if link.custom:
            launch.set_custom_parameters_claim(link.custom)
        launch.set_ags(
            lineitems_url=f"{platform.base}/ags/{platform.course['id']}/lineitems",
            lineitem_url=platform.lineitem_url(link.lineitem) if link.lineitem else None,
        )
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

    @app.post("/deep-link-return")
    def deep_link_return() -> Any:
        """The tool's LtiDeepLinkingResponse: validated by the package (signature against the tool's key set,
        message type, content item types); each resource link becomes a link of the course with its line
        item, as an LMS makes them."""
        config = conf()
        config.get_registration()
        try:
            payload = config.tool_validate_and_decode(request.form["JWT"])
            items = config.validate_deeplinking_resp({"JWT": request.form["JWT"]})
        except (LtiException, LtiDeepLinkingResponseException, jwt.PyJWTError) as error:
            return Response(f"refused: {error}", status=400)
        platform.deep_link_responses.append(payload)
        added = []
        for item in items:
            line_item = item.get("lineItem")
            number = None
            if line_item:
                number = str(len(platform.lineitems) + 1)
                platform.lineitems[number] = dict(line_item)
            link = Link(
                f"dl-{len(platform.links)}", item.get("title", ""), number, dict(item.get("custom", {}))
            )
            platform.links[link.id] = link
            added.append(link)
        return render_template_string(ADDED, links=added)

    @app.post("/token")
    def token() -> Any:
        """The OAuth 2 client-credentials grant, with the tool's signed JWT as its credential."""
        if (refused := down("token")) is not None:
            return refused
        config = conf()
        config.get_registration()
        try:
            return jsonify(config.get_access_token(request.form.to_dict()))
        except (LtiException, MissingRequiredClaim, UnsupportedGrantType, jwt.PyJWTError) as error:
            return jsonify({"error": "invalid_client", "error_description": str(error)}), 400

    @app.post("/ags/<course_id>/lineitems/<item>/scores")
    def scores(course_id: str, item: str) -> Any:
        if (refused := down("score")) is not None:
            return refused
        service = _Grades(_Request(request), conf(), platform)
        service.platform_config.get_registration()
        return _answer(service.handle_resp(service.handle_update_score, line_item_id=item))

    @app.get("/nrps/<course_id>/memberships")
    def memberships(course_id: str) -> Any:
        if (refused := down("memberships")) is not None:
            return refused
        service = _Members(_Request(request), conf(), platform)
        service.platform_config.get_registration()
        return _answer(service.handle_resp(service.handle_get_members))

    return app
