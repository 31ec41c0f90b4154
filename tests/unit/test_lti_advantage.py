"""The pure parts of LTI Advantage: link targets, what practice keeps to, the score a student's mastery makes
(and its AGS progress values), the back-off of failed sends, class lists, deep linking requests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.domain.content import ContentGraph, Exercise, Skill, build_graph, focused
from app.domain.lti import (
    AGS_SCORE_SCOPE,
    CONTEXT,
    CURRICULUM,
    CUSTOM,
    DEEP_LINKING_SETTINGS,
    DEPLOYMENT_ID,
    NRPS_SCOPE,
    NRPS_SERVICE,
    RESOURCE_LINK,
    ROLES,
    LaunchRefused,
    LinkTarget,
    TargetKind,
    canvas_developer_key,
    read_deep_link_request,
    read_launch,
    tool_urls,
    with_form_action,
)
from app.domain.lti_advantage import (
    Member,
    focus_skills,
    is_transient,
    link_choices,
    linked_skills,
    plan_roster,
    read_members,
    retry_delay,
    score_of,
    target_title,
)

LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"


def graph() -> ContentGraph:
    """a -> b -> c in unit "One", d in unit "Two", e (no exercises) in "Two"."""
    skills = [
        Skill("a", "Skill A", unit="One"),
        Skill("b", "Skill B", prerequisites=("a",), unit="One"),
        Skill("c", "Skill C", prerequisites=("b",), unit="One"),
        Skill("d", "Skill D", unit="Two"),
        Skill("e", "Skill E", unit="Two"),
    ]
    exercises = [
        Exercise(f"{s}-1", (s,), f"{s}?", "numeric", ("1",), difficulty=0.5) for s in ("a", "b", "c", "d")
    ] + [Exercise("bd-1", ("b", "d"), "b and d?", "numeric", ("1",), difficulty=0.5)]
    return build_graph(skills, exercises, require_exercises=False)


def test_targets_read_and_write_as_the_custom_parameter() -> None:
    assert LinkTarget.parse("curriculum") is CURRICULUM and str(CURRICULUM) == "curriculum"
    assert LinkTarget.parse(" unit:Fractions ") == LinkTarget(TargetKind.UNIT, "Fractions")
    assert str(LinkTarget(TargetKind.SKILL, "place-value")) == "skill:place-value"
    for bad in ("", "unit:", "skill: ", "curriculum:x", "lesson:3", "skill:a\nb", "unit:" + "x" * 300):
        with pytest.raises(ValueError):
            LinkTarget.parse(bad)


def test_a_link_scores_its_practicable_skills_and_practice_keeps_to_them_and_what_they_build_on() -> None:
    g = graph()
    practicable = tuple(s for s in g.skill_order if s != "e")  # prerequisite order
    assert linked_skills(g, None) == linked_skills(g, CURRICULUM) == practicable
    assert linked_skills(g, LinkTarget(TargetKind.UNIT, "One")) == ("a", "b", "c")
    assert linked_skills(g, LinkTarget(TargetKind.UNIT, "Two")) == ("d",)  # e has no exercises
    assert linked_skills(g, LinkTarget(TargetKind.SKILL, "c")) == ("c",)
    assert linked_skills(g, LinkTarget(TargetKind.SKILL, "gone")) == ()
    assert focus_skills(g, CURRICULUM) is None and focus_skills(g, None) is None
    assert focus_skills(g, LinkTarget(TargetKind.SKILL, "c")) == {"c"}
    kept = focused(g, {"c"})
    assert kept.skill_order == ("a", "b", "c")  # with its prerequisites, in order
    assert set(kept.exercises) == {"a-1", "b-1", "c-1"}  # bd-1 needs d, which is outside
    assert dict(kept.exercises_by_skill) == {"a": ("a-1",), "b": ("b-1",), "c": ("c-1",)}
    assert focused(g, {"d"}).skill_order == ("d",)
    assert target_title(g, LinkTarget(TargetKind.SKILL, "c")) == "Skill C"
    assert target_title(g, LinkTarget(TargetKind.UNIT, "One")) == "One"
    assert target_title(g, CURRICULUM) == "The whole curriculum"


def test_the_picker_offers_the_curriculum_each_unit_and_each_skill() -> None:
    whole, units = link_choices(graph())
    assert (whole.target, whole.skills) == ("curriculum", 4)
    assert [(u.unit.target, u.unit.skills, [s.target for s in u.skills]) for u in units] == [
        ("unit:One", 3, ["skill:a", "skill:b", "skill:c"]),
        ("unit:Two", 1, ["skill:d"]),
    ]


def test_the_score_is_the_share_mastered_with_honest_progress() -> None:
    linked = ("a", "b", "c")
    assert score_of(linked, [], []) is None  # nothing practised: nothing to report
    assert score_of(linked, ["d"], ["d"]) is None  # practised, but none of the link's skills
    assert score_of((), ["a"], ["a"]) is None
    started = score_of(linked, [], ["a"])
    assert started is not None
    assert (started.given, started.maximum, started.activity, started.grading) == (
        0.0,
        3.0,
        "InProgress",
        "Pending",
    )
    partial = score_of(linked, ["a", "d"], ["a", "b"])
    assert partial is not None and (partial.given, partial.maximum) == (1.0, 3.0)
    assert partial.comment == "1 of 3 skills mastered in the tutor."
    done = score_of(linked, ["a", "b", "c"], ["a", "b", "c"])
    assert done is not None and (done.activity, done.grading, done.given) == ("Completed", "FullyGraded", 3.0)
    assert done.same_as(3.0, 3.0, "Completed", "FullyGraded")
    assert not done.same_as(2.0, 3.0, "InProgress", "Pending") and not done.same_as(None, None, None, None)


def test_failed_sends_back_off_doubling_to_six_hours() -> None:
    delays = [retry_delay(n) for n in range(1, 12)]
    assert delays[:4] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert all(b >= a for a, b in zip(delays, delays[1:], strict=False))
    assert max(delays) == timedelta(hours=6) == retry_delay(10_000)
    assert retry_delay(0) == timedelta(0)
    assert [
        s for s in (None, 200, 400, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503) if is_transient(s)
    ] == [
        None,
        408,
        429,
        500,
        502,
        503,
    ]


def test_a_class_list_is_read_for_ids_and_roles_only_and_planned() -> None:
    members = read_members(
        [
            {"user_id": "u1", "roles": [LEARNER], "name": "Ada Lovelace", "email": "ada@example.edu"},
            {"user_id": "u2", "roles": ["Learner"], "status": "Active"},
            {"user_id": "u3", "roles": [LEARNER], "status": "Inactive"},
            {"user_id": "t1", "roles": [INSTRUCTOR]},
            {"user_id": "u1", "roles": [INSTRUCTOR]},  # a second entry of u1: the first counts
            {"user_id": "", "roles": [LEARNER]},
            {"user_id": "x\n", "roles": [LEARNER]},
            {"roles": [LEARNER]},
            "not a member",
        ]
    )
    assert members == [
        Member("u1", learner=True, active=True),
        Member("u2", learner=True, active=True),
        Member("u3", learner=True, active=False),
        Member("t1", learner=False, active=True),
    ]
    assert "Ada" not in repr(members)
    plan = plan_roster(members, enrolled=["u2", "u3", "gone"], teachers=["t1"])
    assert plan.add == ("u1",) and plan.end == ("gone", "u3") and plan.kept == 1 and plan.skipped == 0
    # A learner who is a teacher here is not made a student.
    assert plan_roster(members, enrolled=[], teachers=["u1"]).skipped == 1


def deep_link_body(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": "t-1",
        "name": "Grace Hopper",
        ROLES: [INSTRUCTOR],
        CONTEXT: {"id": "c-1", "title": "Algebra"},
        DEPLOYMENT_ID: "dep-1",
        DEEP_LINKING_SETTINGS: {
            "deep_link_return_url": "https://lms.test/dl/return",
            "accept_types": ["ltiResourceLink"],
            "accept_presentation_document_targets": ["iframe"],
            "data": {"opaque": 1},
        },
        NRPS_SERVICE: {"context_memberships_url": "https://lms.test/m"},
    }
    claims.update(changes)
    return claims


def test_a_deep_linking_request_is_an_instructors_with_a_return_url() -> None:
    request = read_deep_link_request(deep_link_body(), accept_names=False)
    assert (request.sub, request.context_id, request.deployment_id) == ("t-1", "c-1", "dep-1")
    assert request.return_url == "https://lms.test/dl/return" and request.data == {"opaque": 1}
    assert request.context_memberships_url == "https://lms.test/m" and request.name is None
    with pytest.raises(LaunchRefused, match="only an instructor"):
        read_deep_link_request(deep_link_body(**{ROLES: [LEARNER]}), accept_names=False)
    with pytest.raises(LaunchRefused, match="return URL"):
        read_deep_link_request(
            deep_link_body(**{DEEP_LINKING_SETTINGS: {"accept_types": ["ltiResourceLink"]}}),
            accept_names=False,
        )
    with pytest.raises(LaunchRefused, match="data"):
        settings = {"deep_link_return_url": "https://lms.test/r", "data": "x" * 5000}
        read_deep_link_request(deep_link_body(**{DEEP_LINKING_SETTINGS: settings}), accept_names=False)


def test_a_launch_reads_its_links_target_and_ags_scopes() -> None:
    body: dict[str, Any] = {
        "sub": "u-1",
        ROLES: [LEARNER],
        CONTEXT: {"id": "c-1"},
        RESOURCE_LINK: {"id": "r-1"},
        CUSTOM: {"tutor_target": "skill:place-value", "other": "x"},
        "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint": {
            "scope": [AGS_SCORE_SCOPE, AGS_SCORE_SCOPE, 3],
            "lineitem": "https://lms.test/li/1",
        },
    }
    launch = read_launch(body, accept_names=False)
    assert launch.target == LinkTarget(TargetKind.SKILL, "place-value")
    assert launch.ags_scopes == (AGS_SCORE_SCOPE,)
    assert read_launch({**body, CUSTOM: {}}, accept_names=False).target is None
    with pytest.raises(LaunchRefused, match="tutor_target"):
        read_launch({**body, CUSTOM: {"tutor_target": "lesson:9"}}, accept_names=False)


def test_the_answer_page_may_post_to_the_platform_only() -> None:
    policy = "default-src 'self'; form-action 'self'; frame-ancestors 'none'"
    assert with_form_action(policy, ["https://lms.test"]) == (
        "default-src 'self'; frame-ancestors 'none'; form-action 'self' https://lms.test"
    )


def test_canvas_gets_the_score_and_class_list_scopes_and_deep_linking_placements() -> None:
    key = canvas_developer_key(tool_urls("https://tutor.example"))
    assert key["scopes"] == [AGS_SCORE_SCOPE, NRPS_SCOPE]
    placements = {p["placement"]: p["message_type"] for p in key["extensions"][0]["settings"]["placements"]}
    assert placements == {
        "course_navigation": "LtiResourceLinkRequest",
        "assignment_selection": "LtiDeepLinkingRequest",
        "link_selection": "LtiDeepLinkingRequest",
    }
    assert key["extensions"][0]["privacy_level"] == "anonymous"
