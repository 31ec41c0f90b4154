"""pace, personalization, recommendations

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 13:39:41.104218

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('recommendations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('student_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('exercise_id', sa.String(length=100), nullable=True),
    sa.Column('skill_id', sa.String(length=100), nullable=True),
    sa.Column('policy', sa.String(length=30), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('explanation', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['exercise_id'], ['exercises.id'], name=op.f('fk_recommendations_exercise_id_exercises')),
    sa.ForeignKeyConstraint(['skill_id'], ['skills.id'], name=op.f('fk_recommendations_skill_id_skills')),
    sa.ForeignKeyConstraint(['student_id'], ['students.id'], name=op.f('fk_recommendations_student_id_students'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recommendations'))
    )
    with op.batch_alter_table('recommendations', schema=None) as batch_op:
        batch_op.create_index('ix_recommendations_student_id_id', ['student_id', 'id'], unique=False)

    with op.batch_alter_table('mastery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('p_by_speed', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('review_successes', sa.Integer(), server_default='0', nullable=False))
    # Existing rows start with every speed at the standard estimate; run
    # `flask rebuild-mastery` afterwards for the exact pace-aware state.
    mastery = sa.table('mastery', sa.column('student_id', sa.String), sa.column('skill_id', sa.String),
                       sa.column('p_mastery', sa.Float), sa.column('p_by_speed', sa.JSON))
    connection = op.get_bind()
    for student_id, skill_id, p in connection.execute(
            sa.select(mastery.c.student_id, mastery.c.skill_id, mastery.c.p_mastery)).all():
        connection.execute(mastery.update().where(mastery.c.student_id == student_id,
                                                  mastery.c.skill_id == skill_id).values(p_by_speed=[p] * 5))
    with op.batch_alter_table('mastery', schema=None) as batch_op:
        batch_op.alter_column('p_by_speed', existing_type=sa.JSON(), nullable=False)

    with op.batch_alter_table('response_skills', schema=None) as batch_op:
        batch_op.add_column(sa.Column('p_mastery_paced_after', sa.Float(), nullable=True))

    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recommendation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_responses_recommendation_id_recommendations'), 'recommendations', ['recommendation_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('students', schema=None) as batch_op:
        batch_op.add_column(sa.Column('speed_weights', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('personalized', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('personalization_changed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('personalization_changed_by', sa.String(length=100), nullable=True))



def downgrade():
    with op.batch_alter_table('students', schema=None) as batch_op:
        batch_op.drop_column('personalization_changed_by')
        batch_op.drop_column('personalization_changed_at')
        batch_op.drop_column('personalized')
        batch_op.drop_column('speed_weights')

    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_responses_recommendation_id_recommendations'), type_='foreignkey')
        batch_op.drop_column('recommendation_id')

    with op.batch_alter_table('response_skills', schema=None) as batch_op:
        batch_op.drop_column('p_mastery_paced_after')

    with op.batch_alter_table('mastery', schema=None) as batch_op:
        batch_op.drop_column('review_successes')
        batch_op.drop_column('p_by_speed')

    with op.batch_alter_table('recommendations', schema=None) as batch_op:
        batch_op.drop_index('ix_recommendations_student_id_id')

    op.drop_table('recommendations')
