"""Payments: agencies' payment terms, card and offline payments, the append-only ledger and its
checkpoints, Stripe events applied (dedupe), cancellation policies (hotel default, rate plan)
frozen on sale orders

Revision ID: d7e2a9c4f1b6
Revises: c3f1a8d5e7b2
Create Date: 2026-12-01 02:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = 'd7e2a9c4f1b6'
down_revision = 'c3f1a8d5e7b2'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Putting every existing sale on the ledger (below) takes longer than the app's statement
    # timeout (15 s) on a busy database: a million sale orders here.
    op.execute("SET LOCAL statement_timeout = 0")
    op.add_column('agency', sa.Column('payment_terms', sa.String(length=8), server_default='CREDIT', nullable=False))
    op.add_column('agency', sa.Column('credit_limit', sa.Numeric(), nullable=True))
    op.add_column('agency', sa.Column('credit_currency', sa.String(length=3), nullable=True))
    op.add_column('agency', sa.Column('deposit_percent', sa.Integer(), nullable=True))
    op.add_column('agency', sa.Column('balance_due_days', sa.Integer(), nullable=True))
    op.create_check_constraint('payment_terms_known', 'agency', "payment_terms IN ('PREPAY', 'DEPOSIT', 'CREDIT')")
    op.create_check_constraint('credit_limit_valid', 'agency',
                               "(credit_limit IS NULL) = (credit_currency IS NULL) AND credit_limit >= 0")
    op.create_check_constraint(
        'deposit_terms_valid', 'agency',
        "(payment_terms = 'DEPOSIT') = (deposit_percent IS NOT NULL AND balance_due_days IS NOT NULL)"
        " AND deposit_percent BETWEEN 1 AND 99 AND balance_due_days BETWEEN 0 AND 365")
    op.add_column('hotel', sa.Column('cancellation_rules', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('rate_plan', sa.Column('cancellation_rules', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('booking_group', sa.Column('hold_extended_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('sale_order', sa.Column('cancellation_rules', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('sale_order', sa.Column('balance_due_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('sale_order', sa.Column('cancellation_fee', sa.Numeric(), nullable=True))
    op.create_table(
        'payment',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('group_id', sa.Integer(), nullable=False),
        sa.Column('agency_id', sa.Integer(), nullable=False),
        sa.Column('method', sa.String(length=8), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('amount', sa.Numeric(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('provider_id', sa.String(length=255), nullable=True),
        sa.Column('client_secret', sa.Text(), nullable=True),
        sa.Column('reference', sa.String(length=200), nullable=True),
        sa.Column('failure', sa.Text(), nullable=True),
        sa.Column('created_by', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint("state IN ('PENDING', 'REQUIRES_ACTION', 'SUCCEEDED', 'FAILED', 'CANCELED')",
                           name=op.f('ck_payment_state_known')),
        sa.CheckConstraint("method IN ('CARD', 'OFFLINE')", name=op.f('ck_payment_method_known')),
        sa.CheckConstraint('amount > 0', name=op.f('ck_payment_amount_positive')),
        sa.ForeignKeyConstraint(['agency_id'], ['agency.id'], name=op.f('fk_payment_agency_id_agency'),
                                ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['group_id'], ['booking_group.id'], name=op.f('fk_payment_group_id_booking_group'),
                                ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_payment')),
        sa.UniqueConstraint('group_id', 'attempt', name='uq_payment_group_attempt'),
        sa.UniqueConstraint('provider_id', name=op.f('uq_payment_provider_id')),
    )
    op.create_index(op.f('ix_payment_group_id'), 'payment', ['group_id'], unique=False)
    op.create_index(op.f('ix_payment_agency_id'), 'payment', ['agency_id'], unique=False)
    op.create_index('ix_payment_in_flight', 'payment', ['updated_at'], unique=False,
                    postgresql_where=sa.text("method = 'CARD' AND state IN ('PENDING', 'REQUIRES_ACTION')"))
    op.create_table(
        'ledger_entry',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('agency_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('amount', sa.Numeric(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('group_id', sa.Integer(), nullable=True),
        sa.Column('sale_order_id', sa.Integer(), nullable=True),
        sa.Column('payment_id', sa.Integer(), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('created_by', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint("kind IN ('SALE', 'PAYMENT', 'REFUND', 'FEE', 'CREDIT_NOTE', 'OFFLINE_PAYMENT')",
                           name=op.f('ck_ledger_entry_kind_known')),
        sa.CheckConstraint('amount >= 0', name=op.f('ck_ledger_entry_amount_nonnegative')),
        sa.ForeignKeyConstraint(['agency_id'], ['agency.id'], name=op.f('fk_ledger_entry_agency_id_agency'),
                                ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['group_id'], ['booking_group.id'], name=op.f('fk_ledger_entry_group_id_booking_group'),
                                ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['sale_order_id'], ['sale_order.id'],
                                name=op.f('fk_ledger_entry_sale_order_id_sale_order'), ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['payment_id'], ['payment.id'], name=op.f('fk_ledger_entry_payment_id_payment'),
                                ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entry')),
    )
    op.create_index('ix_ledger_entry_agency_tail', 'ledger_entry', ['agency_id', 'id'], unique=False)
    op.create_table(
        'ledger_checkpoint',
        sa.Column('agency_id', sa.Integer(), nullable=False),
        sa.Column('through_id', sa.Integer(), nullable=False),
        sa.Column('sums', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['agency_id'], ['agency.id'], name=op.f('fk_ledger_checkpoint_agency_id_agency'),
                                ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('agency_id', name=op.f('pk_ledger_checkpoint')),
    )
    op.create_index(op.f('ix_ledger_entry_group_id'), 'ledger_entry', ['group_id'], unique=False)
    op.create_index(op.f('ix_ledger_entry_sale_order_id'), 'ledger_entry', ['sale_order_id'], unique=False)
    op.create_index(op.f('ix_ledger_entry_payment_id'), 'ledger_entry', ['payment_id'], unique=False)
    op.create_index('uq_ledger_entry_sale', 'ledger_entry', ['sale_order_id'], unique=True,
                    postgresql_where=sa.text("kind = 'SALE'"))
    # Money that moved stays moved: a correction is another entry, never an edit.
    op.execute(
        """
        CREATE FUNCTION ledger_entry_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'ledger_entry is append-only (% refused)', TG_OP;
        END $$
        """
    )
    op.execute("CREATE TRIGGER ledger_entry_append_only BEFORE UPDATE OR DELETE ON ledger_entry "
               "FOR EACH ROW EXECUTE FUNCTION ledger_entry_is_append_only()")
    op.execute("CREATE TRIGGER ledger_entry_no_truncate BEFORE TRUNCATE ON ledger_entry "
               "FOR EACH STATEMENT EXECUTE FUNCTION ledger_entry_is_append_only()")
    # Sales made before the ledger existed go on it as they stand: a SALE for every sale order, and
    # a CREDIT_NOTE for each already cancelled (they were free). Without them, cancelling an older
    # sale would post a credit note against no sale, and the agency would owe less than nothing.
    op.execute(
        "INSERT INTO ledger_entry (agency_id, kind, amount, currency, group_id, sale_order_id, created_by, created_at)"
        " SELECT agency_id, 'SALE', total_amount, currency, group_id, id, 'migration', confirmed_at FROM sale_order"
        " UNION ALL"
        " SELECT agency_id, 'CREDIT_NOTE', total_amount, currency, group_id, id, 'migration', cancelled_at"
        " FROM sale_order WHERE status = 'CANCELLED' ORDER BY 8, 6"
    )
    op.create_table(
        'stripe_event',
        sa.Column('id', sa.String(length=255), nullable=False),
        sa.Column('type', sa.String(length=128), nullable=False),
        sa.Column('payment_id', sa.Integer(), nullable=True),
        sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['payment_id'], ['payment.id'], name=op.f('fk_stripe_event_payment_id_payment'),
                                ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_event')),
    )
    op.create_index(op.f('ix_stripe_event_payment_id'), 'stripe_event', ['payment_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_stripe_event_payment_id'), table_name='stripe_event')
    op.drop_table('stripe_event')
    op.execute("DROP TRIGGER ledger_entry_no_truncate ON ledger_entry")
    op.execute("DROP TRIGGER ledger_entry_append_only ON ledger_entry")
    op.execute("DROP FUNCTION ledger_entry_is_append_only()")
    op.drop_index('uq_ledger_entry_sale', table_name='ledger_entry', postgresql_where=sa.text("kind = 'SALE'"))
    op.drop_index(op.f('ix_ledger_entry_payment_id'), table_name='ledger_entry')
    op.drop_index(op.f('ix_ledger_entry_sale_order_id'), table_name='ledger_entry')
    op.drop_index(op.f('ix_ledger_entry_group_id'), table_name='ledger_entry')
    op.drop_table('ledger_checkpoint')
    op.drop_index('ix_ledger_entry_agency_tail', table_name='ledger_entry')
    op.drop_table('ledger_entry')
    op.drop_index('ix_payment_in_flight', table_name='payment',
                  postgresql_where=sa.text("method = 'CARD' AND state IN ('PENDING', 'REQUIRES_ACTION')"))
    op.drop_index(op.f('ix_payment_agency_id'), table_name='payment')
    op.drop_index(op.f('ix_payment_group_id'), table_name='payment')
    op.drop_table('payment')
    op.drop_column('sale_order', 'cancellation_fee')
    op.drop_column('sale_order', 'balance_due_at')
    op.drop_column('sale_order', 'cancellation_rules')
    op.drop_column('booking_group', 'hold_extended_at')
    op.drop_column('rate_plan', 'cancellation_rules')
    op.drop_column('hotel', 'cancellation_rules')
    op.drop_constraint('deposit_terms_valid', 'agency', type_='check')
    op.drop_constraint('credit_limit_valid', 'agency', type_='check')
    op.drop_constraint('payment_terms_known', 'agency', type_='check')
    op.drop_column('agency', 'balance_due_days')
    op.drop_column('agency', 'deposit_percent')
    op.drop_column('agency', 'credit_currency')
    op.drop_column('agency', 'credit_limit')
    op.drop_column('agency', 'payment_terms')
