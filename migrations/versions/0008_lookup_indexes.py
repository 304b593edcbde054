"""indexes for a request's messages and an assignment's reminders, by state

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 23:55:00.000000

A request's posted messages (outbox by request_id and state, read for every row delivered about it) and an
assignment's pending reminders (nudges by assignment_id and state, cancelled by every decision) had an index on
the id alone, beside an index that starts with the state. Without statistics (a new database, a small table that
autovacuum has not analysed) PostgreSQL combined both and walked every message ever sent, or every pending reminder
of the company, in the state index; SQLite did the same for the reminders of several assignments. Measured on
PostgreSQL in the Slack latency bench (pg_stat_statements): 180-360 us a statement, growing with the tables.

One index on (id, state) for each replaces the index on the id. Dropping those is within the migration rule
(docs/deploy.md: a release's migrations only add): no query names an index, and every query that used the old one
(its column leads the new one) can use the new one; a replica of the previous version works unchanged.
"""
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_outbox_request_state', 'outbox', ['request_id', 'state'])
    op.drop_index('ix_outbox_request_id', table_name='outbox')
    op.create_index('ix_nudges_assignment_state', 'nudges', ['assignment_id', 'state'])
    op.drop_index('ix_nudges_assignment_id', table_name='nudges')


def downgrade() -> None:
    op.create_index('ix_nudges_assignment_id', 'nudges', ['assignment_id'])
    op.drop_index('ix_nudges_assignment_state', table_name='nudges')
    op.create_index('ix_outbox_request_id', 'outbox', ['request_id'])
    op.drop_index('ix_outbox_request_state', table_name='outbox')
