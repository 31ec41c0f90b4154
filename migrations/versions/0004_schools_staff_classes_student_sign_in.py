"""schools, staff, classes, student sign-in

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:34:57.516254

"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('schools',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schools')),
    sa.UniqueConstraint('name', name=op.f('uq_schools_name'))
    )
    op.create_table('staff_users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=10), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('session_version', sa.Integer(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('teacher', 'admin')", name=op.f('ck_staff_users_role')),
    sa.ForeignKeyConstraint(['school_id'], ['schools.id'], name=op.f('fk_staff_users_school_id_schools'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_users')),
    sa.UniqueConstraint('email', name=op.f('uq_staff_users_email'))
    )
    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_users_school_id'), ['school_id'], unique=False)

    op.create_table('classes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=False),
    sa.Column('teacher_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('join_code', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['school_id'], ['schools.id'], name=op.f('fk_classes_school_id_schools'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['teacher_id'], ['staff_users.id'], name=op.f('fk_classes_teacher_id_staff_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_classes')),
    sa.UniqueConstraint('join_code', name=op.f('uq_classes_join_code')),
    sa.UniqueConstraint('teacher_id', 'name', name=op.f('uq_classes_teacher_id_name'))
    )
    with op.batch_alter_table('classes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_classes_school_id'), ['school_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_classes_teacher_id'), ['teacher_id'], unique=False)

    op.create_table('class_members',
    sa.Column('class_id', sa.Integer(), nullable=False),
    sa.Column('student_id', sa.String(length=36), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['class_id'], ['classes.id'], name=op.f('fk_class_members_class_id_classes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['student_id'], ['students.id'], name=op.f('fk_class_members_student_id_students'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('class_id', 'student_id', name=op.f('pk_class_members'))
    )
    with op.batch_alter_table('class_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_class_members_student_id'), ['student_id'], unique=False)

    op.create_table('student_credentials',
    sa.Column('student_id', sa.String(length=36), nullable=False),
    sa.Column('login_prefix', sa.String(length=8), nullable=False),
    sa.Column('code_hash', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['student_id'], ['students.id'], name=op.f('fk_student_credentials_student_id_students'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('student_id', name=op.f('pk_student_credentials')),
    sa.UniqueConstraint('login_prefix', name=op.f('uq_student_credentials_login_prefix'))
    )
    # Existing apps and their students move into one school, "Default school".
    with op.batch_alter_table('learning_apps', schema=None) as batch_op:
        batch_op.add_column(sa.Column('school_id', sa.Integer(), nullable=True))
    with op.batch_alter_table('students', schema=None) as batch_op:
        batch_op.add_column(sa.Column('school_id', sa.Integer(), nullable=True))
    connection = op.get_bind()
    if connection.execute(sa.text("SELECT COUNT(*) FROM learning_apps")).scalar():
        connection.execute(sa.text("INSERT INTO schools (name, created_at) VALUES ('Default school', :now)"),
                           {"now": datetime.now(timezone.utc)})
        school_id = connection.execute(sa.text("SELECT id FROM schools WHERE name = 'Default school'")).scalar()
        connection.execute(sa.text("UPDATE learning_apps SET school_id = :s"), {"s": school_id})
        connection.execute(sa.text("UPDATE students SET school_id = :s"), {"s": school_id})

    with op.batch_alter_table('learning_apps', schema=None) as batch_op:
        batch_op.alter_column('school_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_index(batch_op.f('ix_learning_apps_school_id'), ['school_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_learning_apps_school_id_schools'), 'schools', ['school_id'], ['id'], ondelete='CASCADE')

    with op.batch_alter_table('students', schema=None) as batch_op:
        batch_op.alter_column('school_id', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('app_id',
               existing_type=sa.INTEGER(),
               nullable=True)
        batch_op.drop_constraint(batch_op.f('uq_students_app_id_external_id'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_students_school_id_external_id'), ['school_id', 'external_id'])
        batch_op.drop_constraint(batch_op.f('fk_students_app_id_learning_apps'), type_='foreignkey')
        batch_op.create_foreign_key(batch_op.f('fk_students_school_id_schools'), 'schools', ['school_id'], ['id'], ondelete='CASCADE')
        batch_op.create_foreign_key(batch_op.f('fk_students_app_id_learning_apps'), 'learning_apps', ['app_id'], ['id'], ondelete='SET NULL')



def downgrade():
    # Students enrolled by a teacher have no app: revision 0003 cannot hold them, so they go.
    op.execute("DELETE FROM students WHERE app_id IS NULL")
    with op.batch_alter_table('students', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_students_app_id_learning_apps'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_students_school_id_schools'), type_='foreignkey')
        batch_op.create_foreign_key(batch_op.f('fk_students_app_id_learning_apps'), 'learning_apps', ['app_id'], ['id'], ondelete='CASCADE')
        batch_op.drop_constraint(batch_op.f('uq_students_school_id_external_id'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_students_app_id_external_id'), ['app_id', 'external_id'])
        batch_op.alter_column('app_id',
               existing_type=sa.INTEGER(),
               nullable=False)
        batch_op.drop_column('school_id')

    with op.batch_alter_table('learning_apps', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_learning_apps_school_id_schools'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_learning_apps_school_id'))
        batch_op.drop_column('school_id')

    op.drop_table('student_credentials')
    with op.batch_alter_table('class_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_class_members_student_id'))

    op.drop_table('class_members')
    with op.batch_alter_table('classes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_classes_teacher_id'))
        batch_op.drop_index(batch_op.f('ix_classes_school_id'))

    op.drop_table('classes')
    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_users_school_id'))

    op.drop_table('staff_users')
    op.drop_table('schools')
