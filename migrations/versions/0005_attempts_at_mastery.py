"""attempts at mastery, answer counters

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 15:49:43.375062

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('mastery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts_at_mastery', sa.Integer(), nullable=True))
    # Skills mastered before this revision get it from `flask rebuild-mastery` (a replay of the log).

    with op.batch_alter_table('students', schema=None) as batch_op:
        batch_op.add_column(sa.Column('answer_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('last_answer_at', sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE students SET "
        "answer_count = (SELECT COUNT(*) FROM responses WHERE responses.student_id = students.id), "
        "last_answer_at = (SELECT MAX(created_at) FROM responses WHERE responses.student_id = students.id)"
    )


def downgrade():
    with op.batch_alter_table('students', schema=None) as batch_op:
        batch_op.drop_column('last_answer_at')
        batch_op.drop_column('answer_count')
    with op.batch_alter_table('mastery', schema=None) as batch_op:
        batch_op.drop_column('attempts_at_mastery')
