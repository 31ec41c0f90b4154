"""bias checks

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 16:35:18.536858

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('bias_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('attribute', sa.String(length=40), nullable=False),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['school_id'], ['schools.id'], name=op.f('fk_bias_reports_school_id_schools'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bias_reports'))
    )
    with op.batch_alter_table('bias_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bias_reports_school_id'), ['school_id'], unique=False)

    op.create_table('group_attributes',
    sa.Column('student_id', sa.String(length=36), nullable=False),
    sa.Column('attribute', sa.String(length=40), nullable=False),
    sa.Column('value', sa.String(length=60), nullable=False),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('set_by', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['student_id'], ['students.id'], name=op.f('fk_group_attributes_student_id_students'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('student_id', 'attribute', name=op.f('pk_group_attributes'))
    )
    with op.batch_alter_table('consent_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('given_by', sa.String(length=100), nullable=True))


def downgrade():
    with op.batch_alter_table('consent_events', schema=None) as batch_op:
        batch_op.drop_column('given_by')

    op.drop_table('group_attributes')
    with op.batch_alter_table('bias_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bias_reports_school_id'))

    op.drop_table('bias_reports')