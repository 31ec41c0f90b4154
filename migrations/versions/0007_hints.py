"""hints

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 16:21:10.377225

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('recommendations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hints_shown', sa.Integer(), server_default='0', nullable=False))

    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hints_used', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.drop_column('hints_used')

    with op.batch_alter_table('recommendations', schema=None) as batch_op:
        batch_op.drop_column('hints_shown')
