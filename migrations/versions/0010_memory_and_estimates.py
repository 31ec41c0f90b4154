"""memory of learned skills (FSRS) and the mastery estimate on the trail

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 21:40:00

The student model grew (hypotheses of speed x prior knowledge, memory per skill): the stored
mastery rows are rebuilt from the log by `flask rebuild-mastery` (scripts/serve runs it after
upgrading; until then a row of the old shape is read as its nearest new shape).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('mastery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('memory_stability', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('memory_difficulty', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('memory_reviewed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('memory_reviews', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('memory_lapses', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('response_skills', schema=None) as batch_op:
        batch_op.add_column(sa.Column('estimate_before', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('estimate_after', sa.Float(), nullable=True))


def downgrade():
    with op.batch_alter_table('response_skills', schema=None) as batch_op:
        batch_op.drop_column('estimate_after')
        batch_op.drop_column('estimate_before')
    with op.batch_alter_table('mastery', schema=None) as batch_op:
        batch_op.drop_column('memory_lapses')
        batch_op.drop_column('memory_reviews')
        batch_op.drop_column('memory_reviewed_at')
        batch_op.drop_column('memory_difficulty')
        batch_op.drop_column('memory_stability')
