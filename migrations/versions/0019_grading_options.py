"""grading options of exercises (tolerance, units, variables, simplest form)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 14:00:00

The options of the new answer kinds (content/README.md "How answers are graded"), only those that differ
from the defaults; existing exercises have none.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('exercises', schema=None) as batch_op:
        batch_op.add_column(sa.Column('grading', sa.JSON(), nullable=False, server_default='{}'))


def downgrade():
    with op.batch_alter_table('exercises', schema=None) as batch_op:
        batch_op.drop_column('grading')
