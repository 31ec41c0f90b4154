"""the unit a skill belongs to (e.g. "Fractions"), from the content files

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 09:00:00

Optional in the content format; existing skills get an empty unit until the next `flask load-content`
fills it in. The pages group skills by it (a student's progress, the class heatmap).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('skills', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unit', sa.String(length=100), nullable=False, server_default=''))


def downgrade():
    with op.batch_alter_table('skills', schema=None) as batch_op:
        batch_op.drop_column('unit')
