"""The pure parts of LTI 1.3: a validated launch's claims, roles, audiences, and the registration helpers."""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.lti import (
    AGS_ENDPOINT,
    CONTEXT,
    NRPS_SERVICE,
    RESOURCE_LINK,
    ROLES,
    LaunchRefused,
    LaunchRole,
    canvas_developer_key,
    check_audience,
    check_platform_url,
    launch_role,
    origin_of,
    read_launch,
    tool_urls,
    with_frame_ancestors,
)

LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
TA = "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"


def body(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": "u-1",
        "name": "Ada Lovelace",
        "email": "ada@example.edu",
        ROLES: [LEARNER],
        CONTEXT: {"id": "c-1", "title": "Algebra"},
        RESOURCE_LINK: {"id": "r-1"},
        AGS_ENDPOINT: {"lineitems": "https://lms.test/li", "lineitem": "https://lms.test/li/1"},
        NRPS_SERVICE: {"context_memberships_url": "https://lms.test/m"},
    }
    claims.update(changes)
    return claims


def test_a_learner_launch_keeps_ids_and_endpoints_and_no_name() -> None:
    launch = read_launch(body(), accept_names=False)
    assert launch.role is LaunchRole.LEARNER and launch.sub == "u-1" and launch.name is None
    assert (launch.context_id, launch.context_title, launch.resource_link_id) == ("c-1", "Algebra", "r-1")
    assert launch.lineitems_url == "https://lms.test/li" and launch.lineitem_url == "https://lms.test/li/1"
    assert launch.context_memberships_url == "https://lms.test/m"
    assert "ada" not in repr(launch).lower()


def test_names_only_when_the_school_turned_them_on() -> None:
    assert read_launch(body(), accept_names=True).name == "Ada Lovelace"


def test_roles() -> None:
    assert launch_role([LEARNER]) is LaunchRole.LEARNER
    assert launch_role([LEARNER, INSTRUCTOR]) is LaunchRole.INSTRUCTOR
    assert launch_role([TA]) is LaunchRole.INSTRUCTOR
    with pytest.raises(LaunchRefused, match="neither a learner's nor an instructor's"):
        launch_role(["http://purl.imsglobal.org/vocab/lis/v2/membership#Mentor"])


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({CONTEXT: None}, "no course"),
        ({RESOURCE_LINK: {}}, "no resource link id"),
        ({"sub": "x" * 300}, r"user \(sub\) is not a string"),
        ({ROLES: "Learner"}, "roles claim is not a list"),
        ({AGS_ENDPOINT: {"lineitems": "javascript:alert(1)"}}, r"not an http\(s\) URL"),
        ({CONTEXT: {"id": "a\nb"}}, "course id is not a string"),
    ],
)
def test_launches_the_tutor_cannot_use_are_refused_with_the_reason(
    changes: dict[str, Any], says: str
) -> None:
    with pytest.raises(LaunchRefused, match=says):
        read_launch(body(**changes), accept_names=False)


def test_a_course_without_a_title_is_named_by_its_id() -> None:
    assert read_launch(body(**{CONTEXT: {"id": "c-9"}}), accept_names=False).context_title == "Course c-9"


def test_audience() -> None:
    check_audience({"aud": "tool"}, "tool")
    check_audience({"aud": ["tool", "other"], "azp": "tool"}, "tool")
    with pytest.raises(LaunchRefused, match="no azp"):
        check_audience({"aud": ["tool", "other"]}, "tool")
    with pytest.raises(LaunchRefused, match="azp is not"):
        check_audience({"aud": "tool", "azp": "other"}, "tool")


def test_platform_urls_are_https_except_on_loopback() -> None:
    assert check_platform_url("https://lms.school.test/auth") is None
    assert check_platform_url("http://localhost:8080/auth") is None
    assert check_platform_url("http://127.0.0.1/auth") is None
    assert check_platform_url("http://lms.school.test/auth") == "must be an https:// URL"
    assert check_platform_url("ftp://lms.school.test/") == "must be an https:// URL"


def test_frame_ancestors_allows_the_platform_and_keeps_the_rest_of_the_policy() -> None:
    policy = "default-src 'self'; object-src 'none'; frame-ancestors 'none'"
    assert with_frame_ancestors(policy, ["https://lms.test"]) == (
        "default-src 'self'; object-src 'none'; frame-ancestors 'self' https://lms.test"
    )
    assert origin_of("https://LMS.test:8443/mod/lti/auth.php?x=1") == "https://lms.test:8443"
    assert origin_of("javascript:alert(1)") is None


def test_what_an_lms_is_given() -> None:
    urls = tool_urls("https://tutor.school.test/")
    assert (urls.login, urls.launch, urls.jwks) == (
        "https://tutor.school.test/lti/login",
        "https://tutor.school.test/lti/launch",
        "https://tutor.school.test/.well-known/jwks.json",
    )
    canvas = canvas_developer_key(urls)
    assert canvas["oidc_initiation_url"] == urls.login and canvas["target_link_uri"] == urls.launch
    assert canvas["public_jwk_url"] == urls.jwks
    [extension] = canvas["extensions"]
    assert extension["domain"] == "tutor.school.test" and extension["privacy_level"] == "anonymous"
