"""standard BKT P(not L) kept beside P(L) (mastery.p_not_mastered)

Revision ID: 0024
Revises: 0020
Create Date: 2026-12-03 19:30:00

With forget = 0 a long run of right answers takes P(not L) below 1e-16, where P(L) alone rounds to 1.0 and no
wrong answer moves it again; pyBKT's forward pass keeps both (app/domain/bkt.py, Belief). Existing rows start
NULL, read as 1 - p_mastery, until their skill's next answer.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0024'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('mastery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('p_not_mastered', sa.Float(), nullable=True))


def downgrade():
    with op.batch_alter_table('mastery', schema=None) as batch_op:
        batch_op.drop_column('p_not_mastered')
