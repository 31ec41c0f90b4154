"""The JSON API for learning apps, under /api/v1 (flask-smorest: schemas validate and document)."""

from __future__ import annotations

from flask import Flask

from app.api import bias, classes, contract, exercises, jobs, students
from app.extensions import api


def init_app(app: Flask) -> None:
    plugin = contract.ContractPlugin(app.extensions["settings"])
    api.init_app(app, spec_kwargs={"extra_plugins": [plugin]})
    contract.register(api.ma_plugin.converter)
    api.spec.components.security_scheme(
        "apiKey", {"type": "http", "scheme": "bearer", "description": "A learning app's API key."}
    )
    api.spec.components.security_scheme(
        "session",
        {
            "type": "apiKey",
            "in": "cookie",
            "name": "session",
            "description": "A signed-in teacher, admin or student (writes need X-CSRFToken).",
        },
    )
    api.spec.options["security"] = [{"apiKey": []}, {"session": []}]
    for blueprint in (students.blp, classes.blp, exercises.blp, bias.blp, jobs.blp):
        api.register_blueprint(blueprint, url_prefix="/api/v1")
