"""One list of recommendation reasons: what the policy produces is what the API documents."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from app.api.schemas import REASONS, SERVED_POLICIES, NextExerciseSchema, RecommendationSchema
from app.domain.bkt import BktParams
from app.domain.content import ContentGraph
from app.domain.reasons import Reason, ServedPolicy
from app.domain.selection import (
    PolicyConfig,
    Recommendation,
    StudentView,
    choose_next_exercise,
    fixed_sequence,
)
from app.domain.simulation import SimulationConfig, simulate_student
from app.services.tutoring.content_files import read_content

SHIPPED = Path(__file__).resolve().parents[2] / "content"


def test_the_schemas_publish_the_domain_enums() -> None:
    assert REASONS == [
        "learn",
        "continue",
        "review",
        "explore",
        "remediate_prerequisite",
        "fixed_order",
        "all_mastered",
        "nothing_ready",
    ]
    assert SERVED_POLICIES == ["adaptive", "fixed_sequence"]
    for schema in (NextExerciseSchema(), RecommendationSchema()):
        assert schema.fields["reason"].metadata["enum"] == [r.value for r in Reason]
        assert schema.fields["policy"].metadata["enum"] == [p.value for p in ServedPolicy]


def test_every_reason_the_served_policies_give_is_in_the_enum() -> None:
    """Simulated students on the shipped graph, through the policy the service calls: every reason and
    policy of every recommendation is a member (a new reason without a member fails here)."""
    graph: ContentGraph = read_content(SHIPPED)
    seen: list[Recommendation] = []

    def adaptive(
        graph: ContentGraph,
        params: Mapping[str, BktParams],
        view: StudentView,
        config: PolicyConfig,
        seed: int,
    ) -> Recommendation:
        chosen = choose_next_exercise(graph, params, view, config, seed)
        seen.append(chosen)
        if view.n_responses % 7 == 0:  # the same student with personalization off
            seen.append(
                fixed_sequence(
                    graph,
                    params,
                    StudentView(view.model, view.now, personalized=False, n_responses=view.n_responses),
                    config,
                )
            )
        return chosen

    config = SimulationConfig(students_per_group=1, attempts_per_skill_cap=2, seed=3)
    simulate_student(graph, "adaptive", "fast", 0, config, adaptive)
    reasons = {r.reason for r in seen}
    assert reasons <= set(Reason) and {r.policy for r in seen} <= set(ServedPolicy)
    # The run reaches the common reasons, so the check above is not vacuous.
    assert {Reason.LEARN, Reason.FIXED_ORDER} <= reasons and len(seen) > 50
