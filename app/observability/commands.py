"""One ``cli.command`` line per run of an operator command that changes data (``app/cli.py`` lists them)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Collection
from typing import Any

import click
import structlog

log = structlog.stdlib.get_logger("app.cli")
LOGGED = "_tutor_logged_command"


def _loggable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def log_runs(command: click.Command, params: Collection[str] = ()) -> None:
    """Log each run of ``command``: its name, outcome ("ok" or "failed", a WARNING), duration_ms, and the
    values of ``params``: options that name no person (never an email, a name, a password, a code, a
    roster). Wraps the command's callback once, however many apps register it."""
    callback = command.callback
    if callback is None or getattr(callback, LOGGED, False):
        return

    @functools.wraps(callback)
    def logged(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        ok = False
        try:
            result = callback(*args, **kwargs)
            ok = True
            return result
        except click.exceptions.Exit as stop:
            ok = stop.exit_code == 0
            raise
        finally:
            options = {name: _loggable(kwargs[name]) for name in params if name in kwargs}
            log.log(
                logging.INFO if ok else logging.WARNING,
                "cli.command",
                command=command.name,
                outcome="ok" if ok else "failed",
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                **options,
            )

    setattr(logged, LOGGED, True)
    command.callback = logged
