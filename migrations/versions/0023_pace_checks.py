"""the answer path's pace-check index (students.pace_drift, mastery.pace_check_at)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 14:00:00

An answer reads only the mastery rows its new pace estimate could bring to mastery (docs/ARCHITECTURE.md,
"Request flow: an answer"). Existing rows start without a level (NULL): each student's next answer looks at
them once, as every answer did before.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('students', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pace_drift', sa.Float(), nullable=False, server_default='0'))
    with op.batch_alter_table('mastery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pace_check_at', sa.Float(), nullable=True))


def downgrade():
    with op.batch_alter_table('mastery', schema=None) as batch_op:
        batch_op.drop_column('pace_check_at')
    with op.batch_alter_table('students', schema=None) as batch_op:
        batch_op.drop_column('pace_drift')
