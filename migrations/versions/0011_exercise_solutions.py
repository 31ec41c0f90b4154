"""worked solutions of exercises

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 10:00:00

Existing exercises get an empty solution; the next `flask load-content` fills it in from the
content files (a changed solution is a content change, like a changed prompt).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('exercises', schema=None) as batch_op:
        batch_op.add_column(sa.Column('solution', sa.JSON(), nullable=False, server_default='[]'))


def downgrade():
    with op.batch_alter_table('exercises', schema=None) as batch_op:
        batch_op.drop_column('solution')
