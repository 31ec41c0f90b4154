"""LTI Advantage: deep linking requests, what a course's link practises, grades sent back (AGS), class lists
(NRPS)

Revision ID: 0020
Revises: 0023
Create Date: 2026-12-05 10:00:00

(Numbered 0020 when 0019 was the head; 0022 and 0023 were committed on 0019 meanwhile, so it follows 0023:
one head, one chain. It touches only the LTI tables.)

`lti_resource_links.target`: what the link practises and scores ("curriculum", "unit:<unit>", "skill:<id>",
from the deep linking choice; NULL: the whole curriculum). `lti_contexts.ags_scopes` (the AGS scopes the
platform granted) and `roster_synced_at` (the last class list pulled through NRPS). `lti_deep_links`: an
instructor's deep linking request, answered once. `lti_scores`: per student and link, the last score the
platform accepted and what is still to send (docs/DATA.md).
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0020"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("lti_contexts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ags_scopes", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("roster_synced_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("lti_resource_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("target", sa.String(length=300), nullable=True))
    op.create_table(
        "lti_deep_links",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("context_id", sa.Integer(), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.String(length=255), nullable=False),
        sa.Column("return_url", sa.String(length=1000), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("target", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["context_id"],
            ["lti_contexts.id"],
            name=op.f("fk_lti_deep_links_context_id_lti_contexts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["lti_platforms.id"],
            name=op.f("fk_lti_deep_links_platform_id_lti_platforms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["staff_user_id"],
            ["staff_users.id"],
            name=op.f("fk_lti_deep_links_staff_user_id_staff_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lti_deep_links")),
    )
    op.create_index(op.f("ix_lti_deep_links_created_at"), "lti_deep_links", ["created_at"])
    op.create_table(
        "lti_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_link_id", sa.Integer(), nullable=False),
        sa.Column("student_id", sa.String(length=36), nullable=False),
        sa.Column("changes", sa.Integer(), server_default="0", nullable=False),
        sa.Column("handled", sa.Integer(), server_default="0", nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("score_given", sa.Float(), nullable=True),
        sa.Column("score_maximum", sa.Float(), nullable=True),
        sa.Column("activity_progress", sa.String(length=20), nullable=True),
        sa.Column("grading_progress", sa.String(length=20), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_link_id"],
            ["lti_resource_links.id"],
            name=op.f("fk_lti_scores_resource_link_id_lti_resource_links"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["student_id"], ["students.id"], name=op.f("fk_lti_scores_student_id_students"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lti_scores")),
        sa.UniqueConstraint(
            "resource_link_id", "student_id", name=op.f("uq_lti_scores_resource_link_id_student_id")
        ),
    )
    op.create_index(op.f("ix_lti_scores_student_id"), "lti_scores", ["student_id"])


def downgrade():
    op.drop_index(op.f("ix_lti_scores_student_id"), table_name="lti_scores")
    op.drop_table("lti_scores")
    op.drop_index(op.f("ix_lti_deep_links_created_at"), table_name="lti_deep_links")
    op.drop_table("lti_deep_links")
    with op.batch_alter_table("lti_resource_links", schema=None) as batch_op:
        batch_op.drop_column("target")
    with op.batch_alter_table("lti_contexts", schema=None) as batch_op:
        batch_op.drop_column("roster_synced_at")
        batch_op.drop_column("ags_scopes")
