"""OneRoster imports: the roster's sourcedIds kept on what they made, so a re-import finds the same rows

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 09:00:00

`classes.sourced_id`, `staff_users.sourced_id` and `students.sourced_id` are the OneRoster sourcedIds of the
class, teacher and student an import made or matched (unique within the school; NULL for rows made any
other way); `class_members.sourced_id` is the enrollment's, marking the memberships an import manages (only
those are ended by a later import). A student's sourcedId is an opaque roster id, never a name or an email.
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TABLES = ("classes", "staff_users", "students")


def upgrade():
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("sourced_id", sa.String(length=255), nullable=True))
            batch_op.create_unique_constraint(
                batch_op.f(f"uq_{table}_school_id_sourced_id"), ["school_id", "sourced_id"]
            )
    with op.batch_alter_table("class_members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sourced_id", sa.String(length=255), nullable=True))


def downgrade():
    with op.batch_alter_table("class_members", schema=None) as batch_op:
        batch_op.drop_column("sourced_id")
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f(f"uq_{table}_school_id_sourced_id"), type_="unique")
            batch_op.drop_column("sourced_id")
