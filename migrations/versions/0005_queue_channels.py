"""queue_channels: a queue's channel registered from the channel itself (Teams)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 19:00:00.000000

A Teams channel is reached through the conversation reference of a message written there, so a queue's channel on
Teams is registered by typing `channel it` in it; this table maps the policy's channel key to that reference.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade() -> None:
    op.create_table('queue_channels',
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('channel', sa.String(length=100), nullable=False),
    sa.Column('address', JSON, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('registered_by', sa.Integer(), nullable=False),
    sa.Column('registered_at', models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['registered_by'], ['employees.id'],
                            name=op.f('fk_queue_channels_registered_by_employees')),
    sa.PrimaryKeyConstraint('platform', 'channel', name=op.f('pk_queue_channels'))
    )


def downgrade() -> None:
    op.drop_table('queue_channels')
