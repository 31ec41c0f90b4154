"""gunicorn settings for scripts/serve (``gunicorn -c scripts/gunicorn.conf.py wsgi:app``).

- No access log of gunicorn's own: the app logs one ``request`` line per request (app/observability), with
  the request id, the route instead of the raw path, and no client address.
- gunicorn's own lines (the master's start-up, worker boots and timeouts) as JSON lines too, with the fields
  the app's lines have (timestamp, level, event, logger, pid); LOG_FORMAT=console makes them readable lines.
- Metrics over every worker: each worker writes its values to PROMETHEUS_MULTIPROC_DIR (scripts/serve makes
  it, empty, at each start), and a dead worker's live gauges are dropped when it exits.

This file imports structlog and prometheus_client only, never the app: the master stays free of the app's
code, so workers load it fresh (and a HUP reloads it).
"""

import os

import structlog
from prometheus_client import multiprocess

accesslog = None
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

_renderer = (
    structlog.dev.ConsoleRenderer(colors=False)
    if os.environ.get("LOG_FORMAT", "json").strip().lower() == "console"
    else structlog.processors.JSONRenderer()
)


def _pid(_logger, _method, event_dict):
    event_dict["pid"] = os.getpid()
    return event_dict


def _first_fields_first(_logger, _method, event_dict):
    ordered = {
        key: event_dict.pop(key) for key in ("timestamp", "level", "event", "logger") if key in event_dict
    }
    ordered.update(event_dict)
    return ordered


logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structured": {
            "()": structlog.stdlib.ProcessorFormatter,
            "foreign_pre_chain": [
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
                _pid,
            ],
            "processors": [
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _first_fields_first,
                _renderer,
            ],
        }
    },
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "structured", "stream": "ext://sys.stderr"}
    },
    # The root logger is the app's (create_app gives it its handler in each worker).
    "root": {"level": "WARNING", "handlers": []},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["stderr"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
    },
}


def child_exit(_server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
