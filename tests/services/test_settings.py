"""Settings: defaults <- environment <- instance/config.py, checked once when the app is created."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import create_app
from app.extensions import db
from app.services.people.groups import allowed_attributes
from app.services.reporting.bias import fairness_config
from app.services.reporting.reports import report_config
from app.services.tutoring.config import mastery_rules, policy_config
from app.settings import SettingsError, configure, current_settings
from tests.conftest import ApiClient, issue_key, make_app


def app_with(tmp_path: Path, **config: Any) -> Flask:
    return create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 's.sqlite3'}", **config}
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"POLICY": {"explore": 0.2}},
            "invalid POLICY setting: 'explore' is not a setting (did you mean 'explore_rate'?",
        ),
        (
            {"POLICY": {"explore_rate": 1.5}},
            "invalid POLICY['explore_rate'] setting: must be a number in [0, 1]",
        ),
        (
            {"POLICY": {"wheel_spin_attempts": 2.5}},
            "invalid POLICY['wheel_spin_attempts'] setting: must be an integer",
        ),
        (
            {"POLICY": {"mastery_threshold": 0.9}},
            "invalid POLICY['mastery_threshold'] setting: it is set once, as MASTERY_THRESHOLD",
        ),
        ({"POLICY": ["explore_rate"]}, "invalid POLICY setting: must be a mapping"),
        (
            {"MASTERY_THRESHOLD": 1.2},
            "invalid MASTERY_THRESHOLD setting: must be a number in (0, 1], not 1.2",
        ),
        (
            {"MASTERY_THRESHOLD": "0.9"},
            "invalid MASTERY_THRESHOLD setting: must be a number in (0, 1], not '0.9'",
        ),
        ({"MASTERY_RULES": {"threshold": 0.9}}, "invalid MASTERY_RULES['threshold'] setting: it is set once"),
        ({"MASTERY_RULES": {"review_level": 0.99}}, "invalid MASTERY_RULES setting: "),
        (
            {"REPORTS": {"inactive_dayz": 3}},
            "invalid REPORTS setting: 'inactive_dayz' is not a setting (did you mean 'inactive_days'?",
        ),
        (
            {"REPORTS": {"horizon": 0}},
            "invalid REPORTS['horizon'] setting: must be an integer at least 1, not 0",
        ),
        ({"BIAS_CHECKS": {"bootstrapp": 200}}, "invalid BIAS_CHECKS setting: 'bootstrapp' is not a setting"),
        (
            {"BIAS_CHECKS": {"alpha": 0}},
            "invalid BIAS_CHECKS['alpha'] setting: must be a number in (0, 1), not 0",
        ),
        (
            {"BIAS_CHECKS": {"ratio_band": [1.25, 0.8]}},
            "invalid BIAS_CHECKS['ratio_band'] setting: must be [low, high]",
        ),
        (
            {"GROUP_ATTRIBUTES": {"class": ["a", "b"]}},
            "invalid GROUP_ATTRIBUTES['class'] setting: 'class' is an organisational group",
        ),
        (
            {"GROUP_ATTRIBUTES": {"gender": []}},
            "invalid GROUP_ATTRIBUTES['gender'] setting: must be a non-empty list",
        ),
        (
            {"RATELIMIT_API": "1200 per fortnight"},
            "invalid RATELIMIT_API setting: '1200 per fortnight' is not a rate limit",
        ),
        ({"RATELIMIT_LOGIN": 10}, "invalid RATELIMIT_LOGIN setting: must be a non-empty string, not 10"),
        (
            {"RETENTION_RESPONSE_DAYS": 0},
            "invalid RETENTION_RESPONSE_DAYS setting: must be an integer at least 1",
        ),
        (
            {"RETENTION_ACCESS_LOG_DAYS": "365"},
            "invalid RETENTION_ACCESS_LOG_DAYS setting: must be an integer",
        ),
        (
            {"LOGIN_MAX_FAILURES": True},
            "invalid LOGIN_MAX_FAILURES setting: must be an integer at least 1, not True",
        ),
        (
            {"MAX_CONTENT_LENGTH": -1},
            "invalid MAX_CONTENT_LENGTH setting: must be an integer at least 1, not -1",
        ),
        (
            {"JOBS_URL": "amqp://rabbit"},
            "invalid JOBS_URL setting: must start with one of sqlite:///, redis://, rediss://",
        ),
        (
            {"JOBS_LEASE_SECONDS": 3, "JOBS_HEARTBEAT_SECONDS": 2},
            "invalid JOBS_LEASE_SECONDS setting: must be at least twice JOBS_HEARTBEAT_SECONDS",
        ),
        ({"JOBS_WORKERS": 0}, "invalid JOBS_WORKERS setting: must be an integer at least 1, not 0"),
        ({"JOBS_QUEUE": "my queue"}, "invalid JOBS_QUEUE setting: must be 1-64 letters"),
    ],
)
def test_a_bad_setting_stops_start_up_with_its_key_named(
    tmp_path: Path, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        app_with(tmp_path, **config)
    assert str(refused.value).startswith(message), str(refused.value)


def test_every_bad_setting_is_named_at_once(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as refused:
        app_with(tmp_path, POLICY={"explore": 1}, REPORTS={"horizon": -1}, RATELIMIT_API="often")
    problems = str(refused.value).split("; ")
    assert [p.split(" setting")[0] for p in problems] == [
        "invalid POLICY",
        "invalid REPORTS['horizon']",
        "invalid RATELIMIT_API",
    ]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "MASTERY_THRESHOLD",
            "high",
            "invalid MASTERY_THRESHOLD setting: the environment variable "
            "MASTERY_THRESHOLD is 'high', not a number",
        ),
        (
            "MAX_REQUEST_BYTES",
            "1MB",
            "invalid MAX_CONTENT_LENGTH setting: the environment variable "
            "MAX_REQUEST_BYTES is '1MB', not an integer",
        ),
        (
            "RETENTION_RESPONSE_DAYS",
            "-5",
            "invalid RETENTION_RESPONSE_DAYS setting: must be an integer at least 1",
        ),
        # A typo must not turn secure cookies off.
        (
            "SESSION_COOKIE_SECURE",
            "flase",
            "invalid SESSION_COOKIE_SECURE setting: the environment variable is 'flase'",
        ),
    ],
)
def test_a_bad_environment_variable_stops_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        app_with(tmp_path)
    assert str(refused.value).startswith(message), str(refused.value)


def test_environment_variables_override_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, value in (
        ("MASTERY_THRESHOLD", "0.97"),
        ("RETENTION_RESPONSE_DAYS", "30"),
        ("RATELIMIT_API", "50 per second"),
        ("SESSION_COOKIE_SECURE", "off"),
        ("MAX_REQUEST_BYTES", "65536"),
    ):
        monkeypatch.setenv(variable, value)
    app = app_with(tmp_path)
    with app.app_context():
        settings = current_settings()
        assert settings.mastery_threshold == 0.97 and settings.retention.response_days == 30
        assert settings.retention.access_log_days == 365  # not set: the default
        assert settings.rate_limits.api == "50 per second" and settings.max_request_bytes == 65536
    assert app.config["SESSION_COOKIE_SECURE"] is False and app.config["MAX_CONTENT_LENGTH"] == 65536


def test_the_instance_config_overrides_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As create_app does without a test mapping: instance/config.py last."""
    monkeypatch.setenv("MASTERY_THRESHOLD", "0.9")
    monkeypatch.setenv("RETENTION_ACCESS_LOG_DAYS", "90")
    (tmp_path / "config.py").write_text(
        "SECRET_KEY = 'from-instance'\nMASTERY_THRESHOLD = 0.97\nPOLICY = {'explore_rate': 0.0}\n"
    )
    app = Flask("instance_test", instance_path=str(tmp_path), instance_relative_config=True)
    settings = configure(app)
    assert settings.mastery_threshold == 0.97 and settings.policy.explore_rate == 0.0
    assert settings.retention.access_log_days == 90  # the environment, where the file says nothing
    assert app.secret_key == "from-instance"
    # A test mapping replaces the instance file (Flask's tutorial factory does the same).
    tested = Flask("instance_test", instance_path=str(tmp_path), instance_relative_config=True)
    assert configure(tested, {"TESTING": True}).mastery_threshold == 0.9


def test_a_bad_instance_config_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / "config.py").write_text("SECRET_KEY = 'x'\nREPORTS = {'stuck_share': 1.5}\n")
    app = Flask("instance_test", instance_path=str(tmp_path), instance_relative_config=True)
    with pytest.raises(
        SettingsError,
        match=r"invalid REPORTS\['stuck_share'\] setting: must be a number in "
        r"\[0, 1\], not 1.5",
    ):
        configure(app)


def test_services_use_the_one_configured_threshold_and_groups(tmp_path: Path) -> None:
    app = app_with(
        tmp_path,
        MASTERY_THRESHOLD=0.97,
        MASTERY_RULES={"review_level": 0.85},
        POLICY={"explore_rate": 0.0},
        REPORTS={"inactive_days": 3},
        BIAS_CHECKS={"bootstrap": 200},
        GROUP_ATTRIBUTES={"language_learner": ["yes", "no"]},
    )
    with app.app_context():
        rules = mastery_rules()
        assert rules.threshold == 0.97 and rules.review_level == 0.85
        assert policy_config().rules is rules and policy_config().explore_rate == 0.0
        assert report_config().rules is rules and report_config().inactive_days == 3
        assert report_config().min_attempts == rules.min_correct
        assert fairness_config().bootstrap == 200 and fairness_config(bootstrap=50, seed=None).bootstrap == 50
        assert allowed_attributes() == {"language_learner": ["yes", "no"]}


def test_the_api_reports_the_configured_threshold(app: Flask, database_url: str) -> None:
    """Through HTTP, on the test database (the ``app`` fixture wipes what this app wrote)."""
    configured = make_app(database_url, MASTERY_THRESHOLD=0.97)
    try:
        api = ApiClient(configured.test_client(), issue_key(configured, "threshold-app"))
        student = api.new_student("s-threshold")
        progress = api.get(f"/api/v1/students/{student}/progress")
        assert progress.status_code == 200 and progress.get_json()["mastery_threshold"] == 0.97
    finally:
        with configured.app_context():
            db.engine.dispose()  # its own connection pool, closed before the database is dropped
