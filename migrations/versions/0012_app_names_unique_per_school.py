"""app names unique per school, not across schools

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 12:00:00

A school issuing a key for an app name that another school uses was told "taken by another school":
one tenant learnt another's app names. Names are now unique within a school only. Existing names are
unique across schools, so they are unique per school too: nothing to migrate. A downgrade fails if two
schools have since chosen the same name (the old constraint cannot hold then).
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('learning_apps', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_learning_apps_name'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_learning_apps_school_id_name'), ['school_id', 'name'])


def downgrade():
    with op.batch_alter_table('learning_apps', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_learning_apps_school_id_name'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_learning_apps_name'), ['name'])
