"""the supply side: suppliers, their status words, runs, drop-folder files, webhook replays;
supplier events tied to their contract and run

Revision ID: 5d1e8f0a2c47
Revises: c41e7a2b9d55
Create Date: 2026-11-30 19:30:14.197575
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '5d1e8f0a2c47'
down_revision = 'c41e7a2b9d55'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('supplier',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('base_url', sa.String(length=2000), nullable=True),
    sa.Column('drop_dir', sa.String(length=2000), nullable=True),
    sa.Column('api_key', sa.Text(), nullable=True),
    sa.Column('webhook_secret', sa.Text(), nullable=True),
    sa.Column('confirm_increases_after', sa.Integer(), server_default='2', nullable=False),
    sa.Column('enabled', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('HTTP', 'FILE')", name=op.f('ck_supplier_kind_known')),
    sa.CheckConstraint('confirm_increases_after BETWEEN 1 AND 100', name=op.f('ck_supplier_confirm_increases_after_range')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_supplier')),
    sa.UniqueConstraint('code', name=op.f('uq_supplier_code'))
    )
    op.create_table('inbound_webhook',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('supplier_id', sa.Integer(), nullable=False),
    sa.Column('webhook_id', sa.String(length=200), nullable=False),
    sa.Column('sync_run_id', sa.Integer(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['supplier_id'], ['supplier.id'], name=op.f('fk_inbound_webhook_supplier_id_supplier'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sync_run_id'], ['sync_run.id'], name=op.f('fk_inbound_webhook_sync_run_id_sync_run'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_webhook')),
    sa.UniqueConstraint('supplier_id', 'webhook_id', name='uq_inbound_webhook_message')
    )
    op.create_index(op.f('ix_inbound_webhook_supplier_id'), 'inbound_webhook', ['supplier_id'], unique=False)
    op.create_index(op.f('ix_inbound_webhook_sync_run_id'), 'inbound_webhook', ['sync_run_id'], unique=False)
    op.create_table('supplier_file',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('supplier_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=1000), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('sync_run_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['supplier_id'], ['supplier.id'], name=op.f('fk_supplier_file_supplier_id_supplier'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sync_run_id'], ['sync_run.id'], name=op.f('fk_supplier_file_sync_run_id_sync_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_supplier_file')),
    sa.UniqueConstraint('supplier_id', 'sha256', name='uq_supplier_file_content')
    )
    op.create_index(op.f('ix_supplier_file_supplier_id'), 'supplier_file', ['supplier_id'], unique=False)
    op.create_index(op.f('ix_supplier_file_sync_run_id'), 'supplier_file', ['sync_run_id'], unique=False)
    op.add_column('allotment_event', sa.Column('source', sa.String(length=16), server_default='OPERATOR', nullable=False))
    op.add_column('allotment_event', sa.Column('contract_id', sa.Integer(), nullable=True))
    op.add_column('allotment_event', sa.Column('sync_run_id', sa.Integer(), nullable=True))
    op.create_index(op.f('ix_allotment_event_contract_id'), 'allotment_event', ['contract_id'], unique=False)
    op.create_index(op.f('ix_allotment_event_sync_run_id'), 'allotment_event', ['sync_run_id'], unique=False)
    op.create_foreign_key(op.f('fk_allotment_event_sync_run_id_sync_run'), 'allotment_event', 'sync_run', ['sync_run_id'], ['id'], ondelete='RESTRICT')
    op.create_foreign_key(op.f('fk_allotment_event_contract_id_contract'), 'allotment_event', 'contract', ['contract_id'], ['id'], ondelete='RESTRICT')
    op.add_column('contract', sa.Column('supplier_id', sa.Integer(), nullable=True))
    op.add_column('contract', sa.Column('supplier_updated_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('contract', sa.Column('supplier_hash', sa.String(length=64), nullable=True))
    op.add_column('contract', sa.Column('held_increases', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False))
    op.create_index(op.f('ix_contract_supplier_id'), 'contract', ['supplier_id'], unique=False)
    op.create_foreign_key(op.f('fk_contract_supplier_id_supplier'), 'contract', 'supplier', ['supplier_id'], ['id'], ondelete='RESTRICT')
    op.add_column('status_transform_config', sa.Column('supplier_id', sa.Integer(), nullable=True))
    op.create_index(op.f('ix_status_transform_config_supplier_id'), 'status_transform_config', ['supplier_id'], unique=False)
    op.create_foreign_key(op.f('fk_status_transform_config_supplier_id_supplier'), 'status_transform_config', 'supplier', ['supplier_id'], ['id'], ondelete='CASCADE')
    op.add_column('sync_run', sa.Column('supplier_id', sa.Integer(), nullable=True))
    op.add_column('sync_run', sa.Column('trigger', sa.String(length=16), server_default='MANUAL', nullable=False))
    op.add_column('sync_run', sa.Column('issues', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False))
    op.create_index('ix_sync_run_supplier_started', 'sync_run', ['supplier_id', 'id'], unique=False)
    op.create_foreign_key(op.f('fk_sync_run_supplier_id_supplier'), 'sync_run', 'supplier', ['supplier_id'], ['id'], ondelete='CASCADE')
    op.drop_constraint(op.f('ck_sync_run_status_known'), 'sync_run', type_='check')
    op.create_check_constraint(op.f('ck_sync_run_status_known'), 'sync_run',
                               "status IN ('RUNNING', 'SUCCEEDED', 'PARTIAL', 'FAILED')")
    op.create_check_constraint(op.f('ck_sync_run_trigger_known'), 'sync_run',
                               "trigger IN ('MANUAL', 'SCHEDULE', 'FILE', 'WEBHOOK')")
    op.create_check_constraint(op.f('ck_allotment_event_source_known'), 'allotment_event',
                               "source IN ('OPERATOR', 'SUPPLIER')")
    op.create_check_constraint(op.f('ck_allotment_event_supplier_event_has_contract'), 'allotment_event',
                               "source <> 'SUPPLIER' OR contract_id IS NOT NULL")
    op.create_check_constraint(op.f('ck_status_transform_config_action_known'), 'status_transform_config',
                               "internal_status IN ('ACTIVE', 'STOP_SELL', 'CANCELLED', 'IGNORE')")


def downgrade() -> None:
    op.drop_constraint(op.f('ck_status_transform_config_action_known'), 'status_transform_config', type_='check')
    op.drop_constraint(op.f('ck_allotment_event_supplier_event_has_contract'), 'allotment_event', type_='check')
    op.drop_constraint(op.f('ck_allotment_event_source_known'), 'allotment_event', type_='check')
    op.drop_constraint(op.f('ck_sync_run_trigger_known'), 'sync_run', type_='check')
    op.execute("UPDATE sync_run SET status = 'SUCCEEDED' WHERE status = 'PARTIAL'")
    op.drop_constraint(op.f('ck_sync_run_status_known'), 'sync_run', type_='check')
    op.create_check_constraint(op.f('ck_sync_run_status_known'), 'sync_run', "status IN ('RUNNING', 'SUCCEEDED', 'FAILED')")
    op.execute("DELETE FROM allotment_event WHERE source = 'SUPPLIER'")
    op.drop_constraint(op.f('fk_sync_run_supplier_id_supplier'), 'sync_run', type_='foreignkey')
    op.drop_index('ix_sync_run_supplier_started', table_name='sync_run')
    op.drop_column('sync_run', 'issues')
    op.drop_column('sync_run', 'trigger')
    op.drop_column('sync_run', 'supplier_id')
    op.drop_constraint(op.f('fk_status_transform_config_supplier_id_supplier'), 'status_transform_config', type_='foreignkey')
    op.drop_index(op.f('ix_status_transform_config_supplier_id'), table_name='status_transform_config')
    op.drop_column('status_transform_config', 'supplier_id')
    op.drop_constraint(op.f('fk_contract_supplier_id_supplier'), 'contract', type_='foreignkey')
    op.drop_index(op.f('ix_contract_supplier_id'), table_name='contract')
    op.drop_column('contract', 'held_increases')
    op.drop_column('contract', 'supplier_hash')
    op.drop_column('contract', 'supplier_updated_at')
    op.drop_column('contract', 'supplier_id')
    op.drop_constraint(op.f('fk_allotment_event_contract_id_contract'), 'allotment_event', type_='foreignkey')
    op.drop_constraint(op.f('fk_allotment_event_sync_run_id_sync_run'), 'allotment_event', type_='foreignkey')
    op.drop_index(op.f('ix_allotment_event_sync_run_id'), table_name='allotment_event')
    op.drop_index(op.f('ix_allotment_event_contract_id'), table_name='allotment_event')
    op.drop_column('allotment_event', 'sync_run_id')
    op.drop_column('allotment_event', 'contract_id')
    op.drop_column('allotment_event', 'source')
    op.drop_index(op.f('ix_supplier_file_sync_run_id'), table_name='supplier_file')
    op.drop_index(op.f('ix_supplier_file_supplier_id'), table_name='supplier_file')
    op.drop_table('supplier_file')
    op.drop_index(op.f('ix_inbound_webhook_sync_run_id'), table_name='inbound_webhook')
    op.drop_index(op.f('ix_inbound_webhook_supplier_id'), table_name='inbound_webhook')
    op.drop_table('inbound_webhook')
    op.drop_table('supplier')
