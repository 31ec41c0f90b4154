"""school administration from the web: deactivated teachers, archived classes, the admins' change log

Revision ID: 0022
Revises: 0019
Create Date: 2026-12-03 14:00:00

`staff_users.deactivated_at`: an admin deactivated the teacher (no sign-in, sessions ended; NULL: active).
`classes.archived_at`: an admin archived the class (out of every class list and scope, its join code signs
nobody in; NULL: open). `admin_changes`: every change an admin makes from the web: who, when, what.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0022"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deactivated_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("classes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "admin_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("actor_name", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"], ["schools.id"], name=op.f("fk_admin_changes_school_id_schools"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_changes")),
    )
    op.create_index("ix_admin_changes_school_id_id", "admin_changes", ["school_id", "id"])


def downgrade():
    op.drop_index("ix_admin_changes_school_id_id", table_name="admin_changes")
    op.drop_table("admin_changes")
    with op.batch_alter_table("classes", schema=None) as batch_op:
        batch_op.drop_column("archived_at")
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.drop_column("deactivated_at")
