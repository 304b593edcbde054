"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-24 05:53:05.699152
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head'))
    )
    # the chain's head exists from the start: replicas appending their first events only ever lock it
    op.bulk_insert(sa.table('audit_head', sa.column('id', sa.Integer), sa.column('seq', sa.BigInteger),
                            sa.column('hash', sa.String)), [{'id': 1, 'seq': 0, 'hash': '0' * 64}])
    op.create_table('departments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name_ja', sa.String(length=200), nullable=False),
    sa.Column('name_en', sa.String(length=200), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('head_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['parent_id'], ['departments.id'], name=op.f('fk_departments_parent_id_departments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_departments')),
    sa.UniqueConstraint('code', name=op.f('uq_departments_code'))
    )
    op.create_table('request_counters',
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('fiscal_year', sa.Integer(), nullable=False),
    sa.Column('last', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('type', 'fiscal_year', name=op.f('pk_request_counters'))
    )
    op.create_table('employees',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('name_ja', sa.String(length=200), nullable=False),
    sa.Column('name_en', sa.String(length=200), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=True),
    sa.Column('manager_id', sa.Integer(), nullable=True),
    sa.Column('substitute_id', sa.Integer(), nullable=True),
    sa.Column('locale', sa.String(length=8), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('hire_date', sa.Date(), nullable=True),
    sa.Column('work_days_per_week', sa.Integer(), nullable=False),
    sa.Column('weekly_hours', sa.Numeric(precision=5, scale=2, asdecimal=False), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['departments.id'], name=op.f('fk_employees_department_id_departments')),
    sa.ForeignKeyConstraint(['manager_id'], ['employees.id'], name=op.f('fk_employees_manager_id_employees')),
    sa.ForeignKeyConstraint(['substitute_id'], ['employees.id'], name=op.f('fk_employees_substitute_id_employees')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_employees')),
    sa.UniqueConstraint('code', name=op.f('uq_employees_code')),
    sa.UniqueConstraint('email', name=op.f('uq_employees_email'))
    )
    # departments and employees point at each other: the head's key is added once both exist
    with op.batch_alter_table('departments') as batch:
        batch.create_foreign_key(op.f('fk_departments_head_id_employees'), 'employees', ['head_id'], ['id'])
    op.create_table('chat_identities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=20), nullable=False),
    sa.Column('workspace', sa.String(length=100), nullable=False),
    sa.Column('user_id', sa.String(length=200), nullable=False),
    sa.Column('last_used_at', models.base.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['employee_id'], ['employees.id'], name=op.f('fk_chat_identities_employee_id_employees')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chat_identities')),
    sa.UniqueConstraint('platform', 'workspace', 'user_id', name='uq_chat_identities_platform_user')
    )
    with op.batch_alter_table('chat_identities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_chat_identities_employee_id'), ['employee_id'], unique=False)

    op.create_table('employee_roles',
    sa.Column('employee_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['employee_id'], ['employees.id'], name=op.f('fk_employee_roles_employee_id_employees')),
    sa.PrimaryKeyConstraint('employee_id', 'role', name=op.f('pk_employee_roles'))
    )
    with op.batch_alter_table('employee_roles', schema=None) as batch_op:
        batch_op.create_index('ix_employee_roles_role', ['role'], unique=False)

    op.create_table('leave_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=False),
    sa.Column('granted_on', sa.Date(), nullable=False),
    sa.Column('days', models.base.Days(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['employee_id'], ['employees.id'], name=op.f('fk_leave_grants_employee_id_employees')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_leave_grants')),
    sa.UniqueConstraint('employee_id', 'granted_on', name='uq_leave_grants_employee_date')
    )
    op.create_table('requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('fiscal_year', sa.Integer(), nullable=False),
    sa.Column('requester_id', sa.Integer(), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('warnings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('decided_at', models.base.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['requester_id'], ['employees.id'], name=op.f('fk_requests_requester_id_employees')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_requests')),
    sa.UniqueConstraint('number', name=op.f('uq_requests_number'))
    )
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_requests_requester_id'), ['requester_id'], unique=False)
        batch_op.create_index('ix_requests_status_type', ['status', 'type'], unique=False)

    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('at', models.base.UTCDateTime(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('request_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['employees.id'], name=op.f('fk_audit_events_actor_id_employees')),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name=op.f('fk_audit_events_request_id_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events')),
    sa.UniqueConstraint('seq', name=op.f('uq_audit_events_seq'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_request_id'), ['request_id'], unique=False)

    op.create_table('delegations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('from_id', sa.Integer(), nullable=False),
    sa.Column('to_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('ends_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('request_types', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('source_request_id', sa.Integer(), nullable=True),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', models.base.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['from_id'], ['employees.id'], name=op.f('fk_delegations_from_id_employees')),
    sa.ForeignKeyConstraint(['source_request_id'], ['requests.id'], name=op.f('fk_delegations_source_request_id_requests')),
    sa.ForeignKeyConstraint(['to_id'], ['employees.id'], name=op.f('fk_delegations_to_id_employees')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delegations'))
    )
    with op.batch_alter_table('delegations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delegations_from_id'), ['from_id'], unique=False)

    op.create_table('leave_taken',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('employee_id', sa.Integer(), nullable=False),
    sa.Column('grant_id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=True),
    sa.Column('taken_on', sa.Date(), nullable=False),
    sa.Column('unit', sa.String(length=10), nullable=False),
    sa.Column('hours', sa.Numeric(precision=5, scale=2), nullable=True),
    sa.Column('days', models.base.Days(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['employee_id'], ['employees.id'], name=op.f('fk_leave_taken_employee_id_employees')),
    sa.ForeignKeyConstraint(['grant_id'], ['leave_grants.id'], name=op.f('fk_leave_taken_grant_id_leave_grants')),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name=op.f('fk_leave_taken_request_id_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_leave_taken'))
    )
    with op.batch_alter_table('leave_taken', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_leave_taken_employee_id'), ['employee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_leave_taken_grant_id'), ['grant_id'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('recipient_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=True),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('platform', sa.String(length=20), nullable=True),
    sa.Column('message_ref', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('sent_at', models.base.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['recipient_id'], ['employees.id'], name=op.f('fk_outbox_recipient_id_employees')),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name=op.f('fk_outbox_request_id_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_outbox_idempotency_key'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_request_id'), ['request_id'], unique=False)
        batch_op.create_index('ix_outbox_state_next', ['state', 'next_attempt_at'], unique=False)

    op.create_table('steps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('required', sa.Integer(), nullable=False),
    sa.Column('cycle', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('activated_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('due_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('completed_at', models.base.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name=op.f('fk_steps_request_id_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_steps')),
    sa.UniqueConstraint('request_id', 'round', 'position', name='uq_steps_request_round_position')
    )
    op.create_table('assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('step_id', sa.Integer(), nullable=False),
    sa.Column('approver_id', sa.Integer(), nullable=False),
    sa.Column('cycle', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('acted_by_id', sa.Integer(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('decided_at', models.base.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['acted_by_id'], ['employees.id'], name=op.f('fk_assignments_acted_by_id_employees')),
    sa.ForeignKeyConstraint(['approver_id'], ['employees.id'], name=op.f('fk_assignments_approver_id_employees')),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name=op.f('fk_assignments_request_id_requests')),
    sa.ForeignKeyConstraint(['step_id'], ['steps.id'], name=op.f('fk_assignments_step_id_steps')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignments'))
    )
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assignments_approver_id'), ['approver_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignments_request_id'), ['request_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignments_step_id'), ['step_id'], unique=False)

    op.create_table('nudges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('due_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('claimed_by', sa.String(length=100), nullable=True),
    sa.Column('claimed_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('sent_at', models.base.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_nudges_assignment_id_assignments')),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name=op.f('fk_nudges_request_id_requests')),
    sa.ForeignKeyConstraint(['target_id'], ['employees.id'], name=op.f('fk_nudges_target_id_employees')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_nudges'))
    )
    with op.batch_alter_table('nudges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_nudges_assignment_id'), ['assignment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_nudges_request_id'), ['request_id'], unique=False)
        batch_op.create_index('ix_nudges_state_due', ['state', 'due_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('nudges', schema=None) as batch_op:
        batch_op.drop_index('ix_nudges_state_due')
        batch_op.drop_index(batch_op.f('ix_nudges_request_id'))
        batch_op.drop_index(batch_op.f('ix_nudges_assignment_id'))

    op.drop_table('nudges')
    with op.batch_alter_table('assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assignments_step_id'))
        batch_op.drop_index(batch_op.f('ix_assignments_request_id'))
        batch_op.drop_index(batch_op.f('ix_assignments_approver_id'))

    op.drop_table('assignments')
    op.drop_table('steps')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_state_next')
        batch_op.drop_index(batch_op.f('ix_outbox_request_id'))

    op.drop_table('outbox')
    with op.batch_alter_table('leave_taken', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_leave_taken_grant_id'))
        batch_op.drop_index(batch_op.f('ix_leave_taken_employee_id'))

    op.drop_table('leave_taken')
    with op.batch_alter_table('delegations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delegations_from_id'))

    op.drop_table('delegations')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_request_id'))

    op.drop_table('audit_events')
    with op.batch_alter_table('requests', schema=None) as batch_op:
        batch_op.drop_index('ix_requests_status_type')
        batch_op.drop_index(batch_op.f('ix_requests_requester_id'))

    op.drop_table('requests')
    op.drop_table('leave_grants')
    with op.batch_alter_table('employee_roles', schema=None) as batch_op:
        batch_op.drop_index('ix_employee_roles_role')

    op.drop_table('employee_roles')
    with op.batch_alter_table('chat_identities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_chat_identities_employee_id'))

    op.drop_table('chat_identities')
    with op.batch_alter_table('departments') as batch:
        batch.drop_constraint(op.f('fk_departments_head_id_employees'), type_='foreignkey')
    op.drop_table('employees')
    op.drop_table('request_counters')
    op.drop_table('departments')
    op.drop_table('audit_head')
