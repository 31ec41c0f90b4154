"""LTI Advantage against a real platform (the ``lti1p3platform`` package, tests/web/lti_platform.py) over real
HTTP, in a real browser (Debian's Chromium), with real job workers (Huey's consumer in this process):

- deep linking: an instructor adds the tutor to the course from inside the LMS's iframe and picks one skill;
  the platform validates the signed LtiDeepLinkingResponse and makes the link and its line item;
- grades: a learner launches that link, practises what it links, and after an answer the platform receives
  the score through AGS (the token endpoint, then the score endpoint); the same state is never sent twice,
  mastery sends the completed score;
- the platform down: the send fails, waits its back-off and is retried, and the platform gets the score once;
- class lists: an instructor's launch pulls the NRPS list into the class (pseudonymously), and the class
  page's button pulls it again, ending the enrolment of a learner the LMS no longer lists;
- a student who opts out has no score sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import expect

from app.extensions import db
from app.models import (
    ClassMembership,
    ConsentEvent,
    Job,
    LtiAccount,
    LtiContext,
    LtiDeepLink,
    LtiResourceLink,
    LtiScore,
    Student,
)
from app.services.integration import lti_grades
from app.services.integration.lti_services import Connector
from tests.jobs_support import wait_for
from tests.web.lti_platform import CLIENT_ID, DEPLOYMENT_ID, INSTRUCTOR, LEARNER, Link, Platform, User
from tests.web.screens import LAPTOP, check_page
from tests.web.test_lti_launch import launch, stored_text
from tests.web.test_practice_browser import answer_current

TARGET = "https://purl.imsglobal.org/spec/lti/claim/"
CONTENT_ITEMS = "https://purl.imsglobal.org/spec/lti-dl/claim/content_items"
ACTIVE_JOBS = ("queued", "running")


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers' score sends go at once (no debounce), so each answer's send can be watched."""
    monkeypatch.setattr(lti_grades, "SEND_DELAY", timedelta(0))


@pytest.fixture(autouse=True)
def fresh_tokens() -> None:
    """No access token of an earlier test's platform (a port used again) in this process's cache."""
    Connector._tokens.clear()  # noqa: SLF001 - the cache is the class's


@pytest.fixture
def learner_page(browser: Any, live_server: str) -> Iterator[Any]:
    """A second browser (its own cookies): the learner's, beside the instructor's ``page``."""
    context = browser.new_context(base_url=live_server)
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def settled(app: Flask) -> bool:
    """No LMS job queued or running, and every score checked (or waiting for its back-off)."""
    with app.app_context():
        active = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Job)
            .where(Job.kind.in_(["lti_grade_send", "lti_roster_sync"]), Job.state.in_(ACTIVE_JOBS))
        )
        due = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(LtiScore)
            .where(LtiScore.changes > LtiScore.handled, LtiScore.next_attempt_at.is_(None))
        )
        db.session.commit()
    return active == 0 and due == 0


def wait_settled(app: Flask) -> None:
    wait_for(lambda: settled(app), timeout=60)


def deep_link(page: Any, platform: Platform, choice: str, *, framed: bool = True) -> Link:
    """The instructor adds the tutor to the course and picks ``choice`` (a label of the picker); the link
    the platform made from the tutor's answer."""
    before = set(platform.links)
    if framed:
        page.goto(f"{platform.base}/course/grace?mode=deeplink")
        tool = page.frame_locator("iframe[title=Tutor]")
    else:
        page.goto(f"{platform.base}/start/grace?mode=deeplink")
        tool = page
    expect(tool.get_by_role("heading", name="What should this link practise?")).to_be_visible()
    tool.get_by_label(choice, exact=True).check()
    tool.get_by_role("button", name="Add this link to the course").click()
    expect(tool.get_by_role("heading", name="Added to the course")).to_be_visible()  # the platform's page
    [added] = set(platform.links) - before
    return platform.links[added]


def practise(page: Any, shipped_graph: Any, *, right: bool = True) -> str:
    """Answer the exercise the practice page shows; its id."""
    page.goto("/practice")
    expect(page.locator("section.exercise")).to_be_visible()
    return answer_current(page, shipped_graph, right=right)


def states(scores: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(s["scoreGiven"], s["scoreMaximum"], s["activityProgress"], s["gradingProgress"]) for s in scores]


def score_row(app: Flask, link_id: str) -> LtiScore:
    with app.app_context():
        row = db.session.scalar(
            sa.select(LtiScore)
            .join(LtiResourceLink, LtiResourceLink.id == LtiScore.resource_link_id)
            .where(LtiResourceLink.resource_link_id == link_id)
        )
        db.session.commit()
    assert row is not None
    return row


def test_an_instructor_links_a_skill_and_the_learners_score_reaches_the_gradebook(
    app: Flask,
    platform: Platform,
    page: Any,
    learner_page: Any,
    shipped_graph: Any,
    jobs_worker: Any,
    quick: None,
) -> None:
    # Deep linking, inside the course's iframe: one skill to master.
    link = deep_link(page, platform, "Place value")
    [answer] = platform.deep_link_responses
    assert answer[TARGET + "message_type"] == "LtiDeepLinkingResponse"
    assert answer[TARGET + "deployment_id"] == DEPLOYMENT_ID
    assert answer["iss"] == CLIENT_ID and answer["aud"] == [platform.issuer]
    assert answer["https://purl.imsglobal.org/spec/lti-dl/claim/data"] == {"placement": "assignment-7"}
    [item] = answer[CONTENT_ITEMS]
    assert item["type"] == "ltiResourceLink" and item["url"].endswith("/lti/launch")
    assert item["custom"] == {"tutor_target": "skill:place-value"}
    assert link.title == "Place value" and link.custom == {"tutor_target": "skill:place-value"}
    assert link.lineitem is not None
    assert platform.lineitems[link.lineitem] == {
        "scoreMaximum": 1,
        "label": "Place value",
        "resourceId": "skill:place-value",
        "tag": "mastery",
    }
    with app.app_context():
        request = db.session.scalar(sa.select(LtiDeepLink))
        assert request is not None and request.answered_at is not None
        assert request.target == "skill:place-value"
        db.session.commit()

    # The learner launches the new link: practice keeps to the skill.
    assert launch(learner_page, platform, "ada", "valid", link=link.id).status == 303
    assert urlsplit(learner_page.url).path == "/practice"
    expect(learner_page.locator("p.focus")).to_contain_text("Place value")
    exercise = learner_page.locator("section.exercise").get_attribute("data-exercise-id")
    assert shipped_graph.exercises[exercise].skill_ids == ("place-value",)
    with app.app_context():
        stored = db.session.scalar(
            sa.select(LtiResourceLink).where(LtiResourceLink.resource_link_id == link.id)
        )
        assert stored is not None and stored.target == "skill:place-value"
        assert stored.lineitem_url == platform.lineitem_url(link.lineitem)
        db.session.commit()
    wait_settled(app)
    assert platform.scores_for(link.id) == []  # launched, nothing practised: nothing to report yet

    # An answer: the platform receives the score through AGS (a partial one, honestly labelled).
    assert shipped_graph.exercises[practise(learner_page, shipped_graph)].skill_ids == ("place-value",)
    [first] = wait_for(lambda: platform.scores_for(link.id), timeout=60)
    assert first["userId"] == "lms-user-77"
    assert (first["scoreMaximum"], first["activityProgress"], first["gradingProgress"]) == (
        1.0,
        "InProgress",
        "Pending",
    )
    assert first["scoreGiven"] == 0.0 and "0 of 1 skill mastered" in first["comment"]
    assert datetime.fromisoformat(first["timestamp"]) <= datetime.now(UTC)

    # More right answers: a state the platform has is not sent again; mastery sends the completed score.
    for _ in range(20):
        wait_settled(app)
        if states(platform.scores_for(link.id))[-1][2] == "Completed":
            break
        practise(learner_page, shipped_graph)
    wait_settled(app)
    sent = states(platform.scores_for(link.id))
    assert sent == [(0.0, 1.0, "InProgress", "Pending"), (1.0, 1.0, "Completed", "FullyGraded")], sent
    row = score_row(app, link.id)
    assert (row.score_given, row.activity_progress, row.grading_progress) == (1.0, "Completed", "FullyGraded")
    assert row.sent_at is not None and row.changes == row.handled
    learner_page.goto("/practice")  # what the link practises is mastered: practice says so
    expect(learner_page.locator("main")).to_contain_text("You have mastered Place value")

    # The teacher's class page says where the gradebook stands; sending again sends nothing the platform
    # has already.
    page.goto(f"{platform.base}/course/grace")
    frame = page.frame_locator("iframe[title=Tutor]")
    expect(frame.locator("section.lms-course")).to_contain_text("1 up to date")
    frame.get_by_role("button", name="Send scores now").click()
    expect(frame.locator("p.notice")).to_contain_text("1 score will be checked")
    wait_settled(app)
    assert len(platform.scores_for(link.id)) == 2
    text = stored_text(app)
    assert "Ada" not in text and "ada@example.edu" not in text


def test_the_platform_being_down_means_a_retry_not_a_lost_or_twice_sent_score(
    app: Flask,
    platform: Platform,
    learner_page: Any,
    shipped_graph: Any,
    jobs_worker: Any,
    quick: None,
) -> None:
    assert launch(learner_page, platform, "ada").status == 303  # link-1: the whole curriculum, graded
    wait_settled(app)
    platform.down = True
    practise(learner_page, shipped_graph)
    wait_for(lambda: platform.refused_while_down, timeout=60)  # the send was tried, and refused
    wait_settled(app)
    failed_at = datetime.now(UTC)
    row = score_row(app, "link-1")
    assert platform.scores == [] and row.changes > row.handled  # not lost: still due
    assert row.attempts == 1 and row.next_attempt_at is not None and row.sent_at is None
    assert "did not answer" in (row.last_error or "") or "HTTP 503" in (row.last_error or "")
    wait_for_back_off = row.next_attempt_at - failed_at
    assert timedelta(seconds=40) < wait_for_back_off <= timedelta(minutes=1), wait_for_back_off

    # The minute's sweep leaves it alone while the back-off runs.
    with app.app_context():
        assert lti_grades.queue_due_sends() == []
    assert len(platform.refused_while_down) == 1  # one request refused: the first try

    # Still down when the back-off has passed: the next wait is twice as long.
    with app.app_context():
        db.session.execute(
            sa.update(LtiScore).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        db.session.commit()
        assert len(lti_grades.queue_due_sends()) == 1
    wait_for(lambda: len(platform.refused_while_down) == 2, timeout=60)
    wait_settled(app)
    row = score_row(app, "link-1")
    assert row.attempts == 2 and row.next_attempt_at is not None
    assert timedelta(seconds=100) < row.next_attempt_at - datetime.now(UTC) <= timedelta(minutes=2)

    # Back up, and the back-off passed: sent once; later sweeps send nothing more.
    platform.down = False
    with app.app_context():
        db.session.execute(
            sa.update(LtiScore).values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        db.session.commit()
        assert len(lti_grades.queue_due_sends()) == 1
    [score] = wait_for(lambda: platform.scores_for("link-1"), timeout=60)
    assert (score["scoreGiven"], score["activityProgress"]) == (0.0, "InProgress")
    assert score["scoreMaximum"] == float(
        len([s for s in shipped_graph.skills if shipped_graph.exercises_by_skill.get(s)])
    )
    wait_settled(app)
    with app.app_context():
        assert lti_grades.queue_due_sends() == []
    row = score_row(app, "link-1")
    assert row.attempts == 0 and row.next_attempt_at is None and row.last_error is None
    assert row.changes == row.handled and len(platform.scores) == 1


def test_class_lists_come_from_the_platform_on_launch_and_on_demand(
    app: Flask, platform: Platform, page: Any, jobs_worker: Any
) -> None:
    platform.users["bob"] = User("lms-user-78", [LEARNER], "Bob Babbage", "bob@example.edu")
    platform.users["carl"] = User("lms-user-79", [LEARNER], "Carl Gauss", "carl@example.edu")
    platform.users["ta"] = User("lms-ta-1", [INSTRUCTOR], "Terry Assistant", "ta@example.edu")
    platform.roster = {
        "ada": "Active",
        "bob": "Active",
        "carl": "Inactive",
        "grace": "Active",
        "ta": "Active",
    }

    # The instructor's launch pulls the class list: the active learners are enrolled, pseudonymously.
    assert launch(page, platform, "grace").status == 303
    wait_settled(app)

    def members() -> dict[str, str]:
        with app.app_context():
            rows = db.session.execute(
                sa.select(LtiAccount.sub, Student.external_id)
                .join(Student, Student.id == LtiAccount.student_id)
                .join(ClassMembership, ClassMembership.student_id == Student.id)
            ).all()
            found = {str(sub): str(external) for sub, external in rows}
            db.session.commit()
        return found

    enrolled = members()
    assert set(enrolled) == {"lms-user-77", "lms-user-78"}
    assert all(e.startswith("lms-") for e in enrolled.values())
    text = stored_text(app)
    for name in ("Ada", "Lovelace", "Bob", "Babbage", "bob@example.edu", "Carl", "Terry", "ta@example.edu"):
        assert name not in text, name
    with app.app_context():
        context = db.session.scalar(sa.select(LtiContext))
        assert context is not None and context.roster_synced_at is not None
        synced = context.roster_synced_at
        db.session.commit()

    # A learner who launches later is the student the list made.
    page.context.clear_cookies()
    assert launch(page, platform, "ada").status == 303
    assert members() == enrolled
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LtiAccount)) == 3  # ada, bob, grace
        context = db.session.scalar(sa.select(LtiContext))
        assert context is not None and context.roster_synced_at == synced  # synced lately: not again
        db.session.commit()

    # Bob leaves the course; the teacher reads the class list again from the class page.
    del platform.roster["bob"]
    page.context.clear_cookies()
    assert launch(page, platform, "grace").status == 303
    wait_settled(app)
    page.set_viewport_size({"width": LAPTOP, "height": 800})
    panel = page.locator("section.lms-course")
    expect(panel).to_contain_text("From Test LMS")
    check_page(page, "class-lms", back_to=LAPTOP)
    panel.get_by_role("button", name="Read the class list now").click()
    expect(page.locator("p.notice")).to_contain_text("The class list is being read")
    wait_for(lambda: set(members()) == {"lms-user-77"}, timeout=60)
    with app.app_context():
        bob = db.session.scalar(sa.select(LtiAccount).where(LtiAccount.sub == "lms-user-78"))
        assert bob is not None and db.session.get(Student, bob.student_id) is not None  # data kept
        db.session.commit()


def test_a_student_who_opts_out_has_no_score_sent(
    app: Flask, platform: Platform, learner_page: Any, shipped_graph: Any, jobs_worker: Any, quick: None
) -> None:
    assert launch(learner_page, platform, "ada").status == 303
    learner_page.goto("/me/data")
    learner_page.get_by_role("button", name="Stop sending my mastery to the gradebook").click()
    expect(learner_page.locator("p.notice")).to_contain_text("no longer sent")
    practise(learner_page, shipped_graph)
    wait_settled(app)
    assert platform.scores == []
    row = score_row(app, "link-1")
    assert row.changes == row.handled and row.sent_at is None
    with app.app_context():
        [event] = db.session.scalars(sa.select(ConsentEvent).where(ConsentEvent.kind == "lms_grades")).all()
        assert event.granted is False and event.actor.startswith("student:") and event.given_by == "student"
        db.session.commit()

    # Back in: what the student has now goes at once.
    learner_page.goto("/me/data")
    learner_page.get_by_role("button", name="Send my mastery to the gradebook again").click()
    [score] = wait_for(lambda: platform.scores_for("link-1"), timeout=60)
    assert score["userId"] == "lms-user-77" and score["activityProgress"] == "InProgress"


def test_deep_linking_is_for_the_course_s_instructor_once(
    app: Flask, platform: Platform, page: Any, browser: Any, live_server: str
) -> None:
    """The picker at the top level (axe, both widths); answered once; a learner cannot deep link; another
    browser (another session) cannot open the instructor's request."""
    page.goto(f"{platform.base}/start/grace?mode=deeplink")
    page.wait_for_url(lambda url: urlsplit(url).path.startswith("/lti/deep-links/"))
    picker = page.url
    check_page(page, "lti-deep-link", back_to=LAPTOP)
    stranger = browser.new_context()
    try:
        tab = stranger.new_page()
        tab.goto(picker)
        assert urlsplit(tab.url).path == "/login"  # another browser has no session: sent to sign in
    finally:
        stranger.close()
    page.get_by_label("All of Fractions (10 skills)", exact=True).check()
    page.get_by_role("button", name="Add this link to the course").click()
    expect(page.get_by_role("heading", name="Added to the course")).to_be_visible()
    [item] = platform.deep_link_responses[0][CONTENT_ITEMS]
    assert item["custom"] == {"tutor_target": "unit:Fractions"} and item["lineItem"]["scoreMaximum"] == 10
    again = page.goto(picker)
    assert again is not None and again.status == 409
    expect(page.locator("main")).to_contain_text("chosen already")

    page.context.clear_cookies()
    refused = launch(page, platform, "ada", "deeplink")
    assert refused.status == 400
    expect(page.locator("main")).to_contain_text("only an instructor")
