"""Settings: one typed object, built and validated once in ``create_app``.

Precedence (last wins), as Flask's tutorial factory does it: the defaults below, environment variables,
``instance/config.py`` (or, in tests, the mapping given to ``create_app``). ``app.config`` keeps the
Flask-level keys the extensions read themselves (SECRET_KEY, SQLALCHEMY_DATABASE_URI, SESSION_COOKIE_*,
RATELIMIT_STORAGE_URI, ...); everything the tutor's own code needs is read once into ``Settings``, checked
(a mistyped key or a value out of range stops start-up with a message naming the key, instead of a 500 at
request time), and attached to the app: ``current_settings()``.

Services never read ``current_app.config``: they get the domain configs built here (``MasteryRules``,
``PolicyConfig``, ``ReportConfig``, ``FairnessConfig``) or a value such as ``retention``, and none of their
signatures has a default that could silently disagree with the configured one.

Adding a group of settings (as ``MASTERY_RULES`` is for ``tracking.MasteryRules``): a frozen dataclass
with typed fields and documented defaults in ``app/domain`` (its ``__post_init__`` may check how fields
relate), a field on ``Settings``, and one ``_group(...)`` line in ``load_settings`` with the ranges that
need more than "a finite number >= 0". Unknown keys, wrong types and out-of-range values are then refused
like those of every other group, each message naming the key.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, current_app
from limits import parse_many

from app.domain.bkt import DEFAULT_MASTERY_THRESHOLD
from app.domain.fairness import FairnessConfig
from app.domain.reports import ReportConfig
from app.domain.selection import PolicyConfig
from app.domain.tracking import MasteryRules
from app.rate_limits import STRATEGY, default_storage_uri, storage_problem

DEFAULT_SECRET_KEY = "dev"  # noqa: S105 - refused outside debug/testing, see configure
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Group attributes a school may record for bias checks (with consent): GROUP_ATTRIBUTES replaces them.
DEFAULT_GROUP_ATTRIBUTES: dict[str, list[str]] = {
    "gender": ["female", "male", "non-binary", "prefer not to say"],
    "language_learner": ["yes", "no"],
    "disability_support": ["yes", "no"],
}
# Groups derived from the school's structure (no attribute, no consent): a recorded attribute of the same
# name could never be read.
ORGANISATIONAL_GROUPS = ("school", "class")


class SettingsError(RuntimeError):
    """A setting that cannot be used; the message names the key and what is wrong with it."""


# --- the typed object ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    # Failed sign-ins in a row from one address on one account before it must wait (LOGIN_MAX_FAILURES)
    max_failures: int
    lockout: timedelta  # the longest wait (LOGIN_LOCKOUT_MINUTES)
    backoff: timedelta  # the first wait, doubled by each further failure (LOGIN_BACKOFF_SECONDS)
    hash_concurrency: int  # password hashes at once per host, below the workers (LOGIN_HASH_CONCURRENCY)
    hash_lock_dir: str  # where the hashing slots' lock files live (LOGIN_HASH_LOCK_DIR: the instance folder)


@dataclass(frozen=True)
class RateLimits:
    login: str  # sign-in posts per client address (RATELIMIT_LOGIN), Flask-Limiter notation
    api: str  # API calls per key, user or address (RATELIMIT_API)
    # Where the API's counters live (RATELIMIT_STORAGE_URI, app/rate_limits.py): sqlite:///<file> (default:
    # the instance folder's ratelimits.sqlite3, every process of one machine), redis://... (every machine)
    # or memory:// (one process)
    storage_uri: str
    key_prefix: str  # before every counter's key (RATELIMIT_KEY_PREFIX): deployments sharing a Redis differ


@dataclass(frozen=True)
class Retention:
    response_days: int  # answers and recommendations (RETENTION_RESPONSE_DAYS)
    access_log_days: int  # the access log (RETENTION_ACCESS_LOG_DAYS)


LOG_FORMATS = ("json", "console")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MIN_METRICS_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class Observability:
    log_format: str  # "json" (one object per line) or "console" (LOG_FORMAT; console under debug and tests)
    log_level: str  # the lowest level logged, one of LOG_LEVELS (LOG_LEVEL)
    client_error_burst: int  # 4xx answers to one client within a minute, per process, before a WARNING
    metrics_token: str | None  # Bearer token /metrics wants (METRICS_TOKEN); None: loopback clients only
    readiness_timeout: float  # seconds /readyz gives the database (READYZ_TIMEOUT_SECONDS)


JOBS_URL_SCHEMES = ("sqlite:///", "redis://", "rediss://")


@dataclass(frozen=True)
class Jobs:
    """Background jobs (app/services/operations/jobs.py): where the queue lives and how workers run them."""

    url: str  # JOBS_URL: sqlite:///<file> (default: the instance folder's jobs.sqlite3) or redis://host:port/db
    queue: str  # JOBS_QUEUE: the queue's name; deployments sharing one Redis use different names
    workers: int  # JOBS_WORKERS: jobs one `flask worker` runs at once (threads)
    lease: timedelta  # JOBS_LEASE_SECONDS: a running job not heard from for this long is re-queued
    heartbeat: timedelta  # JOBS_HEARTBEAT_SECONDS: how often a running job writes its progress and heartbeat
    max_attempts: int  # JOBS_MAX_ATTEMPTS: starts of a job (worker restarts included) before it fails
    max_upload_bytes: int  # JOBS_MAX_UPLOAD_BYTES: the largest log file an import job takes


@dataclass(frozen=True)
class Settings:
    mastery_threshold: float  # the estimate in (0, 1] at which a skill is mastered: one value everywhere
    mastery: MasteryRules  # when a skill is mastered, due for review, needs relearning (MASTERY_RULES)
    policy: PolicyConfig  # next-exercise selection (POLICY), with the mastery rules
    reports: ReportConfig  # student and class reports (REPORTS), with the policy's values of the same name
    bias_checks: FairnessConfig  # BIAS_CHECKS
    group_attributes: Mapping[str, tuple[str, ...]]  # GROUP_ATTRIBUTES: attribute -> allowed values
    sign_in: SignIn
    rate_limits: RateLimits
    retention: Retention
    content_dir: str
    sqlite_busy_timeout_ms: int
    max_request_bytes: int
    proxy_count: int
    observability: Observability  # logs, /metrics, /readyz (app/observability, docs/OPERATIONS.md)
    jobs: Jobs  # the job queue and its workers (JOBS_*)
    fit_cluster: str | None  # FIT_CLUSTER: a Dask scheduler's address (tcp://host:8786) for fits; None: local


def current_settings() -> Settings:
    """The settings of the current app (built by ``create_app``)."""
    settings: Settings = current_app.extensions["settings"]
    return settings


# --- defaults and environment variables ----------------------------------------------------------


def database_url_from_env(instance_path: str) -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        return "sqlite:///" + os.path.join(instance_path, "tutor.sqlite3")
    # Accept the common postgres:// spellings; always use the psycopg 3 driver.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    word = value.strip().lower()
    if word not in TRUE_WORDS + FALSE_WORDS:
        # A typo must not silently turn a security setting (SESSION_COOKIE_SECURE) off.
        raise SettingsError(
            f"invalid {name} setting: the environment variable is {value!r}; use one of "
            f"{', '.join(TRUE_WORDS)} or {', '.join(FALSE_WORDS)}"
        )
    return word in TRUE_WORDS


Number = TypeVar("Number", int, float)


def _env_number(name: str, kind: Callable[[str], Number], default: Number, key: str | None = None) -> Number:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return kind(value.strip())
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise SettingsError(
            f"invalid {key or name} setting: the environment variable {name} is {value!r}, not {what}"
        ) from None


def defaults(instance_path: str) -> dict[str, Any]:
    """The defaults, with the environment variables that override them (app.config's first layer)."""
    return {
        "SECRET_KEY": os.environ.get("SECRET_KEY", DEFAULT_SECRET_KEY),
        "SQLALCHEMY_DATABASE_URI": database_url_from_env(instance_path),
        "CONTENT_DIR": os.environ.get("CONTENT_DIR", str(PROJECT_ROOT / "content")),
        # P(L) at or above which a skill counts as mastered (Corbett & Anderson; OATutor).
        "MASTERY_THRESHOLD": _env_number("MASTERY_THRESHOLD", float, DEFAULT_MASTERY_THRESHOLD),
        # Overrides of MasteryRules, PolicyConfig, ReportConfig and FairnessConfig fields
        # (instance/config.py only).
        "MASTERY_RULES": {},
        "POLICY": {},
        "REPORTS": {},
        "BIAS_CHECKS": {},
        "GROUP_ATTRIBUTES": DEFAULT_GROUP_ATTRIBUTES,
        # Sessions (web sign-in). Secure cookies by default: set SESSION_COOKIE_SECURE=false only
        # for plain http on loopback (scripts/serve does).
        "SESSION_COOKIE_SECURE": _env_flag("SESSION_COOKIE_SECURE", True),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=12),
        # CSRF tokens live as long as the session (a student may practise for hours).
        "WTF_CSRF_TIME_LIMIT": None,
        # Sign-in throttling, shared by every worker (in the database, services/people/throttle.py): failed
        # sign-ins per client address (RATELIMIT_LOGIN), and per address and account a back-off after
        # LOGIN_MAX_FAILURES failures in a row, from LOGIN_BACKOFF_SECONDS doubling up to
        # LOGIN_LOCKOUT_MINUTES; at most LOGIN_HASH_CONCURRENCY password hashes at once per host: 1, below
        # scripts/serve's 2 workers, so sign-ins never hold every worker (bench/signin_flood.py,
        # docs/PERFORMANCE.md).
        "LOGIN_MAX_FAILURES": 5,
        "LOGIN_LOCKOUT_MINUTES": 15,
        "LOGIN_BACKOFF_SECONDS": 30,
        "LOGIN_HASH_CONCURRENCY": _env_number("LOGIN_HASH_CONCURRENCY", int, 1),
        "LOGIN_HASH_LOCK_DIR": os.environ.get("LOGIN_HASH_LOCK_DIR", instance_path),
        # API rate limits (Flask-Limiter, app/rate_limits.py): counters shared by every process of this
        # machine in a SQLite file by default, by every machine with RATELIMIT_STORAGE_URI=redis://...; fixed
        # windows only; a storage that fails falls back to counting in each process (logged), never to a 500.
        "RATELIMIT_STORAGE_URI": (
            os.environ.get("RATELIMIT_STORAGE_URI") or default_storage_uri(instance_path)
        ),
        "RATELIMIT_KEY_PREFIX": os.environ.get("RATELIMIT_KEY_PREFIX", "tutor"),
        "RATELIMIT_STRATEGY": STRATEGY,
        "RATELIMIT_STORAGE_OPTIONS": {},
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_LOGIN": os.environ.get("RATELIMIT_LOGIN", "10 per minute"),
        "RATELIMIT_API": os.environ.get("RATELIMIT_API", "1200 per minute"),
        # SQLite: how long a request waits for the write lock before giving up with a 503 (Retry-After).
        "SQLITE_BUSY_TIMEOUT_MS": _env_number("SQLITE_BUSY_TIMEOUT_MS", int, 30000),
        # Request bodies above this many bytes are refused with a 413 before they are read. The largest
        # legitimate body (a bias check over 500 named skills) is about 50 KB.
        "MAX_CONTENT_LENGTH": _env_number("MAX_REQUEST_BYTES", int, 256 * 1024, key="MAX_CONTENT_LENGTH"),
        # Reverse proxies in front of the app (X-Forwarded-For is trusted from that many hops).
        "PROXY_COUNT": _env_number("PROXY_COUNT", int, 0),
        # Retention (days): raw answers and recommendations, and the access log. `flask purge-expired`.
        "RETENTION_RESPONSE_DAYS": _env_number("RETENTION_RESPONSE_DAYS", int, 365),
        "RETENTION_ACCESS_LOG_DAYS": _env_number("RETENTION_ACCESS_LOG_DAYS", int, 365),
        # Logs, metrics, readiness (docs/OPERATIONS.md). LOG_FORMAT unset: JSON lines, or console lines under
        # debug and in tests. LOG_4XX_BURST: that many 4xx answers to one client within a minute (counted
        # per process) log a WARNING. /metrics answers `Authorization: Bearer <METRICS_TOKEN>` only, or
        # without a token loopback clients only. /readyz gives the database READYZ_TIMEOUT_SECONDS.
        "LOG_FORMAT": os.environ.get("LOG_FORMAT"),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        "LOG_4XX_BURST": _env_number("LOG_4XX_BURST", int, 50),
        "METRICS_TOKEN": os.environ.get("METRICS_TOKEN"),
        "READYZ_TIMEOUT_SECONDS": _env_number("READYZ_TIMEOUT_SECONDS", float, 2.0),
        # Background jobs (README "Running in production"): the queue (JOBS_URL; unset: SQLite in the instance
        # folder), its name, worker threads, the lease after which a silent running job is re-queued, how
        # often a running job reports, starts before a job fails, and the largest log file an import takes.
        "JOBS_URL": os.environ.get("JOBS_URL") or "sqlite:///" + os.path.join(instance_path, "jobs.sqlite3"),
        "JOBS_QUEUE": os.environ.get("JOBS_QUEUE", "tutor"),
        "JOBS_WORKERS": _env_number("JOBS_WORKERS", int, 2),
        "JOBS_LEASE_SECONDS": _env_number("JOBS_LEASE_SECONDS", float, 60.0),
        "JOBS_HEARTBEAT_SECONDS": _env_number("JOBS_HEARTBEAT_SECONDS", float, 2.0),
        "JOBS_MAX_ATTEMPTS": _env_number("JOBS_MAX_ATTEMPTS", int, 3),
        "JOBS_MAX_UPLOAD_BYTES": _env_number("JOBS_MAX_UPLOAD_BYTES", int, 32 * 1024 * 1024),
        # Fits on a Dask cluster (README "Running in production"): the scheduler's address, e.g.
        # tcp://10.0.0.5:8786; empty: this machine's processes, as joblib runs them.
        "FIT_CLUSTER": os.environ.get("FIT_CLUSTER", ""),
        # Bound parameters stay out of SQLAlchemy's exception messages, so out of a 500's logged traceback
        # (they can be answers, codes, a school's ids).
        "SQLALCHEMY_ENGINE_OPTIONS": {"hide_parameters": True},
        # flask-smorest / OpenAPI
        "API_TITLE": "Adaptive tutor API",
        "API_VERSION": "1.3.1",
        "OPENAPI_VERSION": "3.1.0",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
        "JSON_SORT_KEYS": False,
    }


def configure(app: Flask, test_config: Mapping[str, Any] | None = None) -> Settings:
    """Fill ``app.config`` (defaults <- env <- instance/config.py, or the test mapping), then build and
    attach the settings. Raises SettingsError naming every key at fault."""
    app.config.from_mapping(defaults(app.instance_path))
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
    else:
        app.config.from_mapping(test_config)
    if not str(app.config.get("SECRET_KEY") or "").strip():  # e.g. SECRET_KEY= in the environment
        raise SettingsError(
            "Refusing to start with an empty SECRET_KEY: sessions and CSRF tokens would "
            "be signed with nothing."
        )
    if app.config["SECRET_KEY"] == DEFAULT_SECRET_KEY and not (app.debug or app.testing):
        raise SettingsError(
            "Refusing to start with the default SECRET_KEY: set SECRET_KEY in the environment "
            f"or in {os.path.join(app.instance_path, 'config.py')} (scripts/serve writes one)."
        )
    settings = load_settings(app.config)
    app.extensions["settings"] = settings
    return settings


# --- validation -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bounds:
    """A closed or open interval; None = unbounded."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            return (
                f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                f"{')' if self.high_open else ']'}"
            )
        if self.low is not None:
            return f"{'greater than' if self.low_open else 'at least'} {self.low:g}"
        if self.high is not None:
            return f"{'less than' if self.high_open else 'at most'} {self.high:g}"
        return "finite"


PROBABILITY = Bounds(0, 1)
OPEN_PROBABILITY = Bounds(0, 1, low_open=True, high_open=True)
THRESHOLD = Bounds(0, 1, low_open=True)
POSITIVE = Bounds(0, low_open=True)
AT_LEAST_ONE = Bounds(1)
ANY = Bounds()
NON_NEGATIVE = Bounds(0)  # every number of a group not listed in its bounds: finite and >= 0

MASTERY_BOUNDS = {
    "review_level": PROBABILITY,
    "relearn_level": PROBABILITY,
    "guess_floor": PROBABILITY,
    "memory_weights": ANY,
}  # the memory model checks its own parameters
POLICY_BOUNDS = {
    "target_success": OPEN_PROBABILITY,
    "explore_rate": PROBABILITY,
    "daily_attempts": AT_LEAST_ONE,
    "wheel_spin_attempts": AT_LEAST_ONE,
    "remediation_every": AT_LEAST_ONE,
}
REPORT_BOUNDS = {
    "horizon": AT_LEAST_ONE,
    "wheel_spin_attempts": AT_LEAST_ONE,
    "inactive_days": POSITIVE,
    "slow_speed": POSITIVE,
    "stuck_share": PROBABILITY,
    "stuck_min_students": AT_LEAST_ONE,
}
BIAS_CHECK_BOUNDS = {
    "bootstrap": AT_LEAST_ONE,
    "permutations": AT_LEAST_ONE,
    "alpha": OPEN_PROBABILITY,
    "ratio_band": POSITIVE,
    "auc_gap": PROBABILITY,
    "post_mastery_gap": PROBABILITY,
    "share_difference": PROBABILITY,
    "mastered_within": AT_LEAST_ONE,
    "post_mastery_answers": AT_LEAST_ONE,
}
# Fields a group must not set: the one key that does ("mastered" means the same for tracing, selection,
# reports and replays, so the threshold is set once).
ONE_THRESHOLD = "it is set once, as MASTERY_THRESHOLD (the same for tracing, selection and reports)"

Config = TypeVar("Config")
_NOT_A_STRING = "must be a non-empty string, not {!r}"


class _Problems(list[str]):
    def add(self, key: str, problem: str) -> None:
        self.append(f"invalid {key} setting: {problem}")


def _number(value: Any, kind: type, bounds: Bounds) -> str | None:
    """Why ``value`` is not a ``kind`` (int or float) within ``bounds``; None when it is."""
    integer_only = kind is int
    what = "an integer" if integer_only else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer_only else (int, float)):
        return f"must be {what} {bounds}, not {value!r}"
    if not math.isfinite(value) or value not in bounds:
        return f"must be {what} {bounds}, not {value!r}"
    return None


def _value(value: Any, annotation: Any, bounds: Bounds) -> tuple[Any, str | None]:
    """(the value as the field stores it, why it cannot be used or None)."""
    if annotation in (int, float):
        return value, _number(value, annotation, bounds)
    if annotation is bool:
        return value, None if isinstance(value, bool) else f"must be true or false, not {value!r}"
    if annotation is str:
        return value, None if isinstance(value, str) and value else _NOT_A_STRING.format(value)
    if typing.get_origin(annotation) is tuple:
        items = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            return value, f"must be a list of numbers, not {value!r}"
        if items[-1] is not Ellipsis and len(value) != len(items):
            return value, f"must be a list of {len(items)} numbers, not {value!r}"
        kinds = [items[0]] * len(value) if items[-1] is Ellipsis else list(items)
        for item, kind in zip(value, kinds, strict=True):
            problem = _number(item, kind, bounds)
            if problem:
                return value, f"{problem} (in {list(value)!r})"
        return tuple(value), None
    return value, None  # a type the checks above do not know: the dataclass takes it as given


def _group(
    config: Mapping[str, Any],
    key: str,
    cls: type[Config],
    problems: _Problems,
    *,
    base: Mapping[str, Any] | None = None,
    bounds: Mapping[str, Bounds] | None = None,
    reserved: Mapping[str, str] | None = None,
    context: str = "",
) -> Config | None:
    """``cls`` from its defaults, then ``base``, then the mapping ``config[key]``, every value checked.

    ``reserved``: fields the mapping may not set, with the reason; ``context``: where ``base`` came from,
    for the message when the values do not go together. None (and the problems added) when something is
    wrong."""
    overrides = config.get(key) or {}
    if not isinstance(overrides, Mapping):
        problems.add(key, f"must be a mapping of setting names to values, not {overrides!r}")
        overrides = {}
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = dict(base or {})
    for name, value in overrides.items():
        if name in (reserved or {}):
            problems.add(f"{key}[{name!r}]", (reserved or {})[name])
            continue
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.add(key, f"{name!r} is not a setting ({hint}known: {', '.join(sorted(known))})")
            continue
        checked, problem = _value(value, hints[name], (bounds or {}).get(name, NON_NEGATIVE))
        if problem:
            problems.add(f"{key}[{name!r}]", problem)
        else:
            values[name] = checked
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:  # a check of the dataclass itself (__post_init__)
        problems.add(key, f"{error}{f' ({context})' if context else ''}")
        return None


def _inherited(cls: type, source: object) -> dict[str, Any]:
    """The fields of ``cls`` that ``source`` also has: the same name means the same setting."""
    return {f.name: getattr(source, f.name) for f in fields(cls) if hasattr(source, f.name)}


def _plain(config: Mapping[str, Any], key: str, kind: type, bounds: Bounds, problems: _Problems) -> Any:
    value = config.get(key)
    problem = (
        _number(value, kind, bounds)
        if kind in (int, float)
        else (None if isinstance(value, str) and value.strip() else _NOT_A_STRING.format(value))
    )
    if problem:
        problems.add(key, problem)
    return value


def _rate_limit(config: Mapping[str, Any], key: str, problems: _Problems) -> str:
    value = _plain(config, key, str, NON_NEGATIVE, problems)
    if isinstance(value, str) and value.strip():
        try:
            parse_many(value)  # Flask-Limiter's own parser: what it would refuse on every request
        except ValueError:
            problems.add(key, f"{value!r} is not a rate limit (e.g. '10 per minute' or '100/hour')")
    return str(value)


def _rate_limit_storage(config: Mapping[str, Any], problems: _Problems) -> tuple[str, str]:
    """RATELIMIT_STORAGE_URI and RATELIMIT_KEY_PREFIX, and the Flask-Limiter keys that must keep the tutor's
    values: one strategy, the in-memory fallback (a failing storage must not answer 500)."""
    uri = _plain(config, "RATELIMIT_STORAGE_URI", str, NON_NEGATIVE, problems)
    if isinstance(uri, str) and uri.strip():
        problem = storage_problem(uri)
        if problem:
            problems.add("RATELIMIT_STORAGE_URI", problem)
    prefix = config.get("RATELIMIT_KEY_PREFIX")
    if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", prefix):
        problems.add("RATELIMIT_KEY_PREFIX", f"must be 1-64 letters, digits, '.', '_' or '-', not {prefix!r}")
    strategy = config.get("RATELIMIT_STRATEGY")
    if strategy != STRATEGY:
        problems.add(
            "RATELIMIT_STRATEGY",
            f"only {STRATEGY!r} is supported (the SQLite counters implement it alone, and a limit means the "
            f"same on every storage), not {strategy!r}",
        )
    if config.get("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED") is not True:
        problems.add(
            "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED",
            "must stay true: when the storage fails, each worker counts on its own instead of answering 500",
        )
    if config.get("RATELIMIT_IN_MEMORY_FALLBACK"):
        problems.add(
            "RATELIMIT_IN_MEMORY_FALLBACK",
            "is not supported: during a storage failure the configured limits apply, counted per process",
        )
    options = config.get("RATELIMIT_STORAGE_OPTIONS")
    if not isinstance(options, Mapping):
        problems.add(
            "RATELIMIT_STORAGE_OPTIONS", f"must be a mapping of the storage's options, not {options!r}"
        )
    return str(uri), str(prefix)


def _group_attributes(config: Mapping[str, Any], problems: _Problems) -> dict[str, tuple[str, ...]]:
    value = config.get("GROUP_ATTRIBUTES") or DEFAULT_GROUP_ATTRIBUTES
    if not isinstance(value, Mapping):
        problems.add("GROUP_ATTRIBUTES", f"must be a mapping of attribute -> list of values, not {value!r}")
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for attribute, allowed in value.items():
        where = f"GROUP_ATTRIBUTES[{attribute!r}]"
        if not isinstance(attribute, str) or not attribute.strip():
            problems.add("GROUP_ATTRIBUTES", f"attribute names are non-empty strings, not {attribute!r}")
        elif attribute in ORGANISATIONAL_GROUPS:
            problems.add(where, f"{attribute!r} is an organisational group (derived, never recorded)")
        elif (
            not isinstance(allowed, (list, tuple))
            or not allowed
            or not all(isinstance(v, str) and v.strip() for v in allowed)
        ):
            problems.add(where, f"must be a non-empty list of non-empty strings, not {allowed!r}")
        elif len(set(allowed)) != len(allowed):
            problems.add(where, f"lists a value twice: {list(allowed)!r}")
        else:
            out[attribute] = tuple(allowed)
    return out


def _observability(config: Mapping[str, Any], problems: _Problems) -> Observability:
    log_format = config.get("LOG_FORMAT")
    if log_format is None:
        log_format = "console" if config.get("DEBUG") or config.get("TESTING") else "json"
    elif not isinstance(log_format, str) or log_format.strip().lower() not in LOG_FORMATS:
        problems.add("LOG_FORMAT", f"must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    level = config.get("LOG_LEVEL")
    if not isinstance(level, str) or level.strip().upper() not in LOG_LEVELS:
        problems.add("LOG_LEVEL", f"must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    token = config.get("METRICS_TOKEN")
    if token is not None and (
        not isinstance(token, str) or len(token) < MIN_METRICS_TOKEN_LENGTH or token != token.strip()
    ):
        # Refused rather than ignored: an operator who set a token (even an empty one) meant /metrics to be
        # guarded by it.
        problems.add(
            "METRICS_TOKEN",
            f"must be a string of at least {MIN_METRICS_TOKEN_LENGTH} characters without surrounding "
            "spaces (or unset: /metrics for loopback clients only)",
        )
    burst = _plain(config, "LOG_4XX_BURST", int, AT_LEAST_ONE, problems)
    timeout = _plain(config, "READYZ_TIMEOUT_SECONDS", float, POSITIVE, problems)
    return Observability(
        log_format=str(log_format).strip().lower(),
        log_level=str(level).strip().upper(),
        client_error_burst=burst,
        metrics_token=token,
        readiness_timeout=float(timeout) if isinstance(timeout, (int, float)) else 0.0,
    )


def _jobs(config: Mapping[str, Any], problems: _Problems) -> Jobs:
    url = _plain(config, "JOBS_URL", str, NON_NEGATIVE, problems)
    if isinstance(url, str) and url.strip() and not url.startswith(JOBS_URL_SCHEMES):
        problems.add("JOBS_URL", f"must start with one of {', '.join(JOBS_URL_SCHEMES)}, not {url!r}")
    queue = _plain(config, "JOBS_QUEUE", str, NON_NEGATIVE, problems)
    if isinstance(queue, str) and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", queue):
        problems.add("JOBS_QUEUE", f"must be 1-64 letters, digits, '.', '_' or '-', not {queue!r}")
    numbers = {
        key: _plain(config, key, kind, bounds, problems)
        for key, kind, bounds in (
            ("JOBS_WORKERS", int, AT_LEAST_ONE),
            ("JOBS_LEASE_SECONDS", float, POSITIVE),
            ("JOBS_HEARTBEAT_SECONDS", float, POSITIVE),
            ("JOBS_MAX_ATTEMPTS", int, AT_LEAST_ONE),
            ("JOBS_MAX_UPLOAD_BYTES", int, AT_LEAST_ONE),
        )
    }
    lease, heartbeat = numbers["JOBS_LEASE_SECONDS"], numbers["JOBS_HEARTBEAT_SECONDS"]
    valid = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lease, heartbeat))
    if valid and lease < 2 * heartbeat:
        # A lease must outlast missed heartbeats (a busy database), or live jobs would be re-queued.
        problems.add(
            "JOBS_LEASE_SECONDS",
            f"must be at least twice JOBS_HEARTBEAT_SECONDS ({heartbeat!r}), not {lease!r}",
        )
    return Jobs(
        url=str(url),
        queue=str(queue),
        workers=numbers["JOBS_WORKERS"],
        lease=timedelta(seconds=float(lease) if valid else 0.0),
        heartbeat=timedelta(seconds=float(heartbeat) if valid else 0.0),
        max_attempts=numbers["JOBS_MAX_ATTEMPTS"],
        max_upload_bytes=numbers["JOBS_MAX_UPLOAD_BYTES"],
    )


CLUSTER_ADDRESS = re.compile(r"(tcp|tls)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):([0-9]{1,5})")


def cluster_address_problem(value: object) -> str | None:
    """Why ``value`` is not a Dask scheduler's address (``tcp://host:port``, ``tls://host:port``), or None."""
    match = CLUSTER_ADDRESS.fullmatch(value) if isinstance(value, str) else None
    if match is None or not 0 < int(match[3]) < 65536:
        return f"must be a Dask scheduler's address such as tcp://10.0.0.5:8786 (or empty), not {value!r}"
    return None


def _fit_cluster(config: Mapping[str, Any], problems: _Problems) -> str | None:
    value = config.get("FIT_CLUSTER")
    if value is None or (isinstance(value, str) and not value.strip()):
        return None  # fits run in this machine's processes
    problem = cluster_address_problem(value)
    if problem:
        problems.add("FIT_CLUSTER", problem)
        return None
    return str(value)


def load_settings(config: Mapping[str, Any]) -> Settings:
    """Settings from a filled ``app.config``; SettingsError listing every key at fault."""
    problems = _Problems()
    threshold = _plain(config, "MASTERY_THRESHOLD", float, THRESHOLD, problems)
    mastery = _group(
        config,
        "MASTERY_RULES",
        MasteryRules,
        problems,
        bounds=MASTERY_BOUNDS,
        base={} if problems else {"threshold": threshold},
        reserved={"threshold": ONE_THRESHOLD},
        context=f"threshold {threshold!r} is MASTERY_THRESHOLD",
    )
    policy = _group(
        config,
        "POLICY",
        PolicyConfig,
        problems,
        bounds=POLICY_BOUNDS,
        base={} if mastery is None else {"rules": mastery},
        reserved={
            "rules": "set MASTERY_RULES (and MASTERY_THRESHOLD) instead",
            "mastery_threshold": ONE_THRESHOLD,
        },
    )
    # A report judges by the policy's rules and wheel-spinning unless REPORTS says otherwise; "not enough
    # data" below the answers mastery needs.
    inherited = (
        {}
        if policy is None
        else {**_inherited(ReportConfig, policy), "min_attempts": policy.rules.min_correct}
    )
    reports = _group(
        config,
        "REPORTS",
        ReportConfig,
        problems,
        bounds=REPORT_BOUNDS,
        base=inherited,
        reserved={"rules": "set MASTERY_RULES (and MASTERY_THRESHOLD) instead"},
    )
    bias_checks = _group(config, "BIAS_CHECKS", FairnessConfig, problems, bounds=BIAS_CHECK_BOUNDS)
    if bias_checks is not None and not bias_checks.ratio_band[0] < 1 < bias_checks.ratio_band[1]:
        problems.add(
            "BIAS_CHECKS['ratio_band']",
            f"must be [low, high] with low < 1 < high, not {list(bias_checks.ratio_band)!r}",
        )
    group_attributes = _group_attributes(config, problems)
    plain = {
        key: _plain(config, key, kind, bounds, problems)
        for key, kind, bounds in (
            ("LOGIN_MAX_FAILURES", int, AT_LEAST_ONE),
            ("LOGIN_LOCKOUT_MINUTES", float, POSITIVE),
            ("LOGIN_BACKOFF_SECONDS", float, POSITIVE),
            ("LOGIN_HASH_CONCURRENCY", int, AT_LEAST_ONE),
            ("LOGIN_HASH_LOCK_DIR", str, NON_NEGATIVE),
            ("RETENTION_RESPONSE_DAYS", int, AT_LEAST_ONE),
            ("RETENTION_ACCESS_LOG_DAYS", int, AT_LEAST_ONE),
            ("CONTENT_DIR", str, NON_NEGATIVE),
            ("SQLITE_BUSY_TIMEOUT_MS", int, NON_NEGATIVE),
            ("MAX_CONTENT_LENGTH", int, AT_LEAST_ONE),
            ("PROXY_COUNT", int, NON_NEGATIVE),
        )
    }
    limits = {key: _rate_limit(config, key, problems) for key in ("RATELIMIT_LOGIN", "RATELIMIT_API")}
    storage_uri, key_prefix = _rate_limit_storage(config, problems)
    observability = _observability(config, problems)
    jobs = _jobs(config, problems)
    fit_cluster = _fit_cluster(config, problems)
    if problems or mastery is None or policy is None or reports is None or bias_checks is None:
        raise SettingsError("; ".join(problems))
    return Settings(
        mastery_threshold=float(threshold),
        mastery=mastery,
        policy=policy,
        reports=reports,
        bias_checks=bias_checks,
        group_attributes=group_attributes,
        sign_in=SignIn(
            plain["LOGIN_MAX_FAILURES"],
            timedelta(minutes=plain["LOGIN_LOCKOUT_MINUTES"]),
            timedelta(seconds=plain["LOGIN_BACKOFF_SECONDS"]),
            plain["LOGIN_HASH_CONCURRENCY"],
            plain["LOGIN_HASH_LOCK_DIR"],
        ),
        rate_limits=RateLimits(limits["RATELIMIT_LOGIN"], limits["RATELIMIT_API"], storage_uri, key_prefix),
        retention=Retention(plain["RETENTION_RESPONSE_DAYS"], plain["RETENTION_ACCESS_LOG_DAYS"]),
        content_dir=plain["CONTENT_DIR"],
        sqlite_busy_timeout_ms=plain["SQLITE_BUSY_TIMEOUT_MS"],
        max_request_bytes=plain["MAX_CONTENT_LENGTH"],
        proxy_count=plain["PROXY_COUNT"],
        observability=observability,
        jobs=jobs,
        fit_cluster=fit_cluster,
    )


def with_overrides(config: Config, **overrides: Any) -> Config:
    """``config`` with the overrides that were given (None = keep the configured value)."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})  # type: ignore[type-var]
