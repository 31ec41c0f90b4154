"""replays in chunks: the parameters each student's state was computed under

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 09:00:00

`content_state.parameters_revision` is bumped whenever every student's state must be replayed (new current
parameters from a fit, content defaults that change a skill's parameters, `flask rebuild-mastery`);
`students.parameters_revision` is the revision the student's mastery rows and pace were last replayed or
updated under. A student with answers whose revision is behind is replayed first by their next answer, read
as replayed, and brought up to date by the chunked replay. Existing rows start at 0 on both sides: the state
they hold is the one every earlier replay left, under the current parameters.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('content_state', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('parameters_revision', sa.Integer(), nullable=False, server_default='0')
        )
    with op.batch_alter_table('students', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('parameters_revision', sa.Integer(), nullable=False, server_default='0')
        )


def downgrade():
    with op.batch_alter_table('students', schema=None) as batch_op:
        batch_op.drop_column('parameters_revision')
    with op.batch_alter_table('content_state', schema=None) as batch_op:
        batch_op.drop_column('parameters_revision')
