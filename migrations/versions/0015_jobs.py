"""background jobs: the durable record of long work (bias checks, fits, imports, purges) and uploaded files

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 10:00:00

`jobs` holds what was asked, by whom, its state, progress, result and the lease of the worker running it
(Huey only carries the id to a worker); `job_files` holds an uploaded log until its import job ends.
One active job per school, kind and parameters (a partial unique index), one job per Idempotency-Key.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

ACTIVE = sa.text("state IN ('queued', 'running')")


def upgrade():
    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('params_digest', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('progress_done', sa.Integer(), nullable=False),
    sa.Column('progress_total', sa.Integer(), nullable=True),
    sa.Column('progress_message', sa.String(length=200), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('committed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('lease', sa.String(length=32), nullable=True),
    sa.Column('worker', sa.String(length=200), nullable=True),
    sa.Column('task_id', sa.String(length=64), nullable=True),
    sa.CheckConstraint("state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name=op.f('ck_jobs_state')),
    sa.ForeignKeyConstraint(['school_id'], ['schools.id'], name=op.f('fk_jobs_school_id_schools'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sa.UniqueConstraint('school_id', 'kind', 'idempotency_key', name=op.f('uq_jobs_school_id_kind_idempotency_key'))
    )
    op.create_index('ix_jobs_school_id_id', 'jobs', ['school_id', 'id'], unique=False)
    op.create_index('ix_jobs_state_heartbeat_at', 'jobs', ['state', 'heartbeat_at'], unique=False)
    op.create_index(
        'uq_jobs_active_params', 'jobs', ['school_id', 'kind', 'params_digest'], unique=True,
        sqlite_where=ACTIVE, postgresql_where=ACTIVE,
    )
    op.create_table('job_files',
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_files_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', name=op.f('pk_job_files'))
    )


def downgrade():
    op.drop_table('job_files')
    op.drop_index('uq_jobs_active_params', table_name='jobs')
    op.drop_index('ix_jobs_state_heartbeat_at', table_name='jobs')
    op.drop_index('ix_jobs_school_id_id', table_name='jobs')
    op.drop_table('jobs')
