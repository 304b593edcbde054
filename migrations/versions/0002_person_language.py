"""person language: the person's own choice and what their chat platform reported

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 09:00:00.000000

`employees.locale` stays the org CSV's language; the effective language is locale_choice, else platform_locale,
else locale (models.people.Employee.locale). Both new columns are nullable: nobody has chosen anything yet.
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('employees', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locale_choice', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('platform_locale', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('employees', schema=None) as batch_op:
        batch_op.drop_column('platform_locale')
        batch_op.drop_column('locale_choice')
