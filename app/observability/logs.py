"""Log lines: structlog over the standard library's logging, one event per line, on stderr.

The tutor's own code logs events with fields: ``log = structlog.stdlib.get_logger(__name__)``, then
``log.info("fit.finished", fit_run_id=7, duration_ms=812.5)`` (the event names and their fields are listed
in docs/OPERATIONS.md). One handler on the root logger renders them, and every standard-library record as
well (werkzeug, gunicorn's workers, alembic, Flask-Limiter, SQLAlchemy's warnings), with structlog's
``ProcessorFormatter``: as one JSON object per line (``LOG_FORMAT=json``, the default) or as a readable
line (``console``, the default under debug and in tests). Every line has ``timestamp`` (ISO 8601, UTC),
``level``, ``event``, ``logger`` and ``pid``; inside a request also ``request_id``.

Logging is process-wide: ``configure`` replaces the handler it installed before, so the last app created in
a process (tests create many) decides the format and level. structlog itself is configured once; its chain
is the same for both formats (only the handler's formatter differs), so loggers cached on first use stay
right.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

HANDLER_MARK = "_tutor_log_handler"
# Warnings and errors only, whatever LOG_LEVEL says: SQLAlchemy's engine would log every statement (at
# INFO), Flask-Limiter names the client's address when a limit is hit (the `request` line has the 429).
QUIET_LOGGERS = ("sqlalchemy", "flask-limiter")
FIRST_FIELDS = ("timestamp", "level", "event", "logger")


def _add_pid(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    event_dict["pid"] = os.getpid()  # gunicorn workers write to one stream
    return event_dict


def _first_fields_first(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Timestamp, level, event and logger lead each line, then the event's own fields."""
    ordered = {key: event_dict.pop(key) for key in FIRST_FIELDS if key in event_dict}
    ordered.update(event_dict)
    return ordered


# For structlog's events and the standard library's records alike.
SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,  # request_id, bound by app.observability.requests
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    _add_pid,
]


class _NoDevServerRequestLines(logging.Filter):
    """Werkzeug's development server logs each request with the client's address and the raw path (ids and
    query strings in it); the tutor's ``request`` event replaces those lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.INFO and " - - [" in str(record.msg))


_NO_DEV_SERVER_LINES = _NoDevServerRequestLines()


def formatter(log_format: str) -> structlog.stdlib.ProcessorFormatter:
    """The formatter of the root handler: ``json`` or ``console``."""
    renderer: list[Processor]
    if log_format == "json":
        renderer = [
            structlog.processors.format_exc_info,  # the traceback as one string field, "exception"
            _first_fields_first,
            structlog.processors.JSONRenderer(),
        ]
    else:
        renderer = [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=SHARED,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )


_structlog_configured = False


def configure(log_format: str, level: str, *, capture_warnings: bool) -> None:
    """Route structlog and the standard library to one handler on stderr, in ``log_format`` from
    ``level`` up; ``capture_warnings``: Python warnings (SQLAlchemy's, say) become log lines (not under
    pytest, which records warnings itself)."""
    global _structlog_configured
    if not _structlog_configured:
        structlog.configure(
            processors=[
                structlog.stdlib.filter_by_level,  # cheap: below the level nothing else runs
                *SHARED,
                structlog.processors.StackInfoRenderer(),
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=True,
        )
        _structlog_configured = True
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, HANDLER_MARK, False):
            root.removeHandler(handler)
    # The stream as it is now: under click's CliRunner (tests) a command's own output stays apart.
    handler = logging.StreamHandler(sys.stderr)
    setattr(handler, HANDLER_MARK, True)
    handler.setFormatter(formatter(log_format))
    root.addHandler(handler)
    root.setLevel(level)
    # Flask's own handler would print app.logger's lines a second time, unstructured.
    from flask.logging import default_handler

    logging.getLogger("app").removeHandler(default_handler)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    werkzeug = logging.getLogger("werkzeug")
    if _NO_DEV_SERVER_LINES not in werkzeug.filters:
        werkzeug.addFilter(_NO_DEV_SERVER_LINES)
    logging.captureWarnings(capture_warnings)


def is_configured() -> bool:
    """Whether an app has set logging up in this process (alembic's env.py then leaves it alone)."""
    return any(getattr(handler, HANDLER_MARK, False) for handler in logging.getLogger().handlers)
