"""HR broadcasts: broadcasts, their occurrences and recipients, campaign claims

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08 09:00:00.000000

An occurrence is unique per (broadcast, time) and a campaign claim per key: the unique row is the claim that
makes a repeated schedule fire once per occurrence across replicas.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade() -> None:
    op.create_table('broadcasts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('audience', JSON, nullable=False),
    sa.Column('message_ja', sa.Text(), nullable=False),
    sa.Column('message_en', sa.Text(), nullable=False),
    sa.Column('ack_required', sa.Boolean(), nullable=False),
    sa.Column('send_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('repeat', JSON, nullable=True),
    sa.Column('repeat_until', sa.Date(), nullable=True),
    sa.Column('next_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('cancelled_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('cancelled_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['author_id'], ['employees.id'], name=op.f('fk_broadcasts_author_id_employees')),
    sa.ForeignKeyConstraint(['cancelled_by'], ['employees.id'], name=op.f('fk_broadcasts_cancelled_by_employees')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_broadcasts'))
    )
    op.create_index('ix_broadcasts_next_at', 'broadcasts', ['next_at'], unique=False)
    op.create_table('broadcast_occurrences',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('broadcast_id', sa.Integer(), nullable=False),
    sa.Column('occurs_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('fired_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['broadcast_id'], ['broadcasts.id'],
                            name=op.f('fk_broadcast_occurrences_broadcast_id_broadcasts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_broadcast_occurrences')),
    sa.UniqueConstraint('broadcast_id', 'occurs_at', name='uq_broadcast_occurrences_broadcast_time')
    )
    op.create_table('broadcast_recipients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('occurrence_id', sa.Integer(), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=False),
    sa.Column('outbox_id', sa.Integer(), nullable=True),
    sa.Column('acknowledged_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('reminders', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['employee_id'], ['employees.id'],
                            name=op.f('fk_broadcast_recipients_employee_id_employees')),
    sa.ForeignKeyConstraint(['occurrence_id'], ['broadcast_occurrences.id'],
                            name=op.f('fk_broadcast_recipients_occurrence_id_broadcast_occurrences')),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], name=op.f('fk_broadcast_recipients_outbox_id_outbox')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_broadcast_recipients')),
    sa.UniqueConstraint('occurrence_id', 'employee_id', name='uq_broadcast_recipients_occurrence_employee')
    )
    op.create_table('campaign_claims',
    sa.Column('claim_key', sa.String(length=200), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('claim_key', name=op.f('pk_campaign_claims'))
    )


def downgrade() -> None:
    op.drop_table('campaign_claims')
    op.drop_table('broadcast_recipients')
    op.drop_table('broadcast_occurrences')
    op.drop_index('ix_broadcasts_next_at', table_name='broadcasts')
    op.drop_table('broadcasts')
