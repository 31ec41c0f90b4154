"""The JSON API for learning apps, under /api/v1 (flask-smorest: schemas validate and document)."""

from __future__ import annotations

from flask import Flask

from app.api import exercises, students
from app.extensions import api


def init_app(app: Flask) -> None:
    api.init_app(app)
    api.spec.components.security_scheme(
        "apiKey", {"type": "http", "scheme": "bearer", "description": "A learning app's API key."}
    )
    api.spec.options["security"] = [{"apiKey": []}]
    for blueprint in (students.blp, exercises.blp):
        api.register_blueprint(blueprint, url_prefix="/api/v1")
