"""Which nudge digest shows which request: digest_requests; a person's nudges by kind: ix_nudges_target_kind

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 16:00:00.000000

A digest (an outbox row of kind nudge_digest) lists several requests; when one of them is decided, every posted
digest that shows it is updated. This table finds them by request in one indexed lookup. The inbox lists what was
escalated to a person, found through the new index on nudges (target_id, kind).
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


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


def downgrade() -> None:
    op.drop_index('ix_nudges_target_kind', table_name='nudges')
    op.drop_index('ix_digest_requests_request_id', table_name='digest_requests')
    op.drop_table('digest_requests')
