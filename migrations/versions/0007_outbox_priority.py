"""outbox.priority: which rows a delivery claim takes first

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 16:00:00.000000

Lower first: 0 for news about what a person just did, on a message they are looking at (their card turning to
承認済み, the requester's status message, a broadcast DM after 確認しました); 1 for everything else (workflow/delivery.py).
Rows already in the outbox get 1, the order they had. Only a column is added (a release's migrations only add,
docs/deploy.md): replicas of the previous version go on claiming in their order until they are replaced. The claim
finds due rows by the index it had and reads their priority from the table (due rows are few: a backlog).
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('priority', sa.SmallInteger(), server_default=sa.text('1'), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('priority')
