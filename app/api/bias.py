"""Bias checks (admins run them; admins and teachers read them) and students' group attributes."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from app.api.auth import api_blueprint, current_principal
from app.api.job_schemas import FOLLOW_JOB, LOCATION, IdempotencyHeaderSchema, JobSchema
from app.api.jobs import accepted
from app.api.schemas import (
    BiasCheckListSchema,
    BiasCheckRequestSchema,
    BiasCheckSchema,
    DeclineResultSchema,
    GroupAttributesResultSchema,
    GroupAttributesSchema,
)
from app.extensions import db
from app.services.operations import job_kinds
from app.services.people import groups
from app.services.reporting import bias

blp = api_blueprint("bias", __name__, "Bias checks across student groups; group attributes (with consent).")


@blp.route("/bias-checks")
class BiasChecks(MethodView):
    @blp.doc(operationId="run_bias_check", responses=FOLLOW_JOB)
    @blp.arguments(BiasCheckRequestSchema)
    @blp.arguments(IdempotencyHeaderSchema, location="headers")
    @blp.response(202, JobSchema, headers=LOCATION)
    @blp.alt_response(409, response="CONFLICT")  # an Idempotency-Key reused with other parameters
    def post(self, data: dict[str, Any], headers: dict[str, Any]) -> Any:
        """Queue a bias check over the school's students grouped by an attribute (admins): 202 with the job.
        Follow its Location until it succeeded; its result_url is the stored check. An unknown attribute,
        or a window without any answer, is refused at once (422)."""
        job, _ = job_kinds.start_bias_check(
            db.session(),
            current_principal(),
            data["attribute"],
            skills=data.get("skills"),
            since=data.get("since"),
            until=data.get("until"),
            bootstrap=data.get("bootstrap"),
            seed=data.get("seed"),
            diagnostic=data["diagnostic"],
            idempotency_key=headers.get("idempotency_key"),
        )
        return accepted(job)

    @blp.doc(operationId="list_bias_checks")
    @blp.response(200, BiasCheckListSchema(many=True))
    def get(self) -> Any:
        """The school's stored bias checks, newest first."""
        return bias.list_reports(db.session(), current_principal())


# bias_check_id, as a bias-check job's result names it (result_url is this path): not a job's id.
@blp.route("/bias-checks/<id:bias_check_id>")
class BiasCheckById(MethodView):
    @blp.doc(operationId="get_bias_check")
    @blp.response(200, BiasCheckSchema)
    def get(self, bias_check_id: int) -> Any:
        """A stored bias check (a bias-check job's result.bias_check_id)."""
        return bias.get_report(db.session(), current_principal(), bias_check_id)


@blp.route("/students/<student_id>/group-attributes")
class GroupAttributes(MethodView):
    @blp.doc(operationId="set_group_attributes")
    @blp.arguments(GroupAttributesSchema)
    @blp.response(200, GroupAttributesResultSchema)
    def put(self, data: dict[str, Any], student_id: str) -> Any:
        """Record consent and group attributes for bias checks (admins). Never used to teach."""
        recorded = groups.set_group_attributes(
            db.session(),
            current_principal(),
            student_id,
            data["values"],
            consent_given_by=data["consent_given_by"],
        )
        return {"recorded": sorted(recorded)}

    @blp.doc(operationId="withdraw_group_attributes")
    @blp.response(200, DeclineResultSchema)
    def delete(self, student_id: str) -> Any:
        """Withdraw consent: the student's group attributes are deleted at once (the student or an admin)."""
        return {"removed": groups.decline(db.session(), current_principal(), student_id)}
