"""indexes for the hot path and retention

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 17:03:17.969441

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('recommendations', schema=None) as batch_op:
        batch_op.create_index('ix_recommendations_created_at', ['created_at'], unique=False)

    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.create_index('ix_responses_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_responses_recommendation_id', ['recommendation_id'], unique=False)


def downgrade():
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.drop_index('ix_responses_recommendation_id')
        batch_op.drop_index('ix_responses_created_at')

    with op.batch_alter_table('recommendations', schema=None) as batch_op:
        batch_op.drop_index('ix_recommendations_created_at')
