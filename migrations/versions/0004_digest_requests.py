"""digest_requests, ix_nudges_target_kind, chat_identities.address, employees.notify_platform

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 16:00:00.000000

A digest (an outbox row of kind nudge_digest) lists several requests; when one of them is decided, every posted
digest that shows it is updated. This table finds them by request in one indexed lookup. The inbox lists what was
escalated to a person, found through the new index on nudges (target_id, kind). A chat identity gets an
address: how its platform reaches the person unprompted (Teams: a conversation reference). An employee may choose
the platform their messages go to (employees.notify_platform).
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')


def upgrade() -> None:
    op.create_table('digest_requests',
    sa.Column('outbox_id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], name=op.f('fk_digest_requests_outbox_id_outbox')),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name=op.f('fk_digest_requests_request_id_requests')),
    sa.PrimaryKeyConstraint('outbox_id', 'request_id', name=op.f('pk_digest_requests'))
    )
    op.create_index('ix_digest_requests_request_id', 'digest_requests', ['request_id'], unique=False)
    op.create_index('ix_nudges_target_kind', 'nudges', ['target_id', 'kind'], unique=False)
    with op.batch_alter_table('chat_identities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address', JSON, nullable=True))
    with op.batch_alter_table('employees', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notify_platform', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('employees', schema=None) as batch_op:
        batch_op.drop_column('notify_platform')
    with op.batch_alter_table('chat_identities', schema=None) as batch_op:
        batch_op.drop_column('address')
    op.drop_index('ix_nudges_target_kind', table_name='nudges')
    op.drop_index('ix_digest_requests_request_id', table_name='digest_requests')
    op.drop_table('digest_requests')
