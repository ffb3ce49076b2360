"""Rate plans (sell prices by rules), agency tiers, and the price breakdown frozen on each booking

booking.total_amount and sale_order.total_amount lose their scale of 2: a sell price is rounded to
its currency's minor unit, which is 3 places for KWD or BHD (numeric(12, 2) would round those
again, silently). Relaxing a numeric's typmod rewrites nothing.

Revision ID: e2b8c4f6a913
Revises: a7c3e9d1f204
Create Date: 2026-11-30 22:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = 'e2b8c4f6a913'
down_revision = 'a7c3e9d1f204'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('agency', sa.Column('tier', sa.String(length=32), nullable=True))
    op.create_check_constraint(op.f('ck_agency_tier_format'), 'agency', "tier ~ '^[A-Z0-9_-]{1,32}$'")
    op.create_table(
        'rate_plan',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('hotel_id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('agency_ids', postgresql.ARRAY(sa.Integer()), server_default='{}', nullable=False),
        sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
        sa.Column('rules', postgresql.JSONB(astext_type=sa.Text()), server_default='[]', nullable=False),
        sa.Column('version', sa.Integer(), server_default='1', nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint("code ~ '^[A-Z0-9_-]{2,32}$'", name=op.f('ck_rate_plan_code_format')),
        sa.ForeignKeyConstraint(['hotel_id'], ['hotel.id'], name=op.f('fk_rate_plan_hotel_id_hotel'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_rate_plan')),
        sa.UniqueConstraint('hotel_id', 'code', name='uq_rate_plan_hotel_code'),
    )
    op.create_index(op.f('ix_rate_plan_hotel_id'), 'rate_plan', ['hotel_id'], unique=False)
    op.add_column('booking', sa.Column('nights', postgresql.JSONB(astext_type=sa.Text()), server_default='[]',
                                       nullable=False))
    op.add_column('booking', sa.Column('net_amount', sa.Numeric(), nullable=True))
    op.add_column('booking', sa.Column('rate_plan_id', sa.Integer(), nullable=True))
    op.add_column('booking', sa.Column('rate_plan_version', sa.Integer(), nullable=True))
    op.create_foreign_key(op.f('fk_booking_rate_plan_id_rate_plan'), 'booking', 'rate_plan', ['rate_plan_id'],
                          ['id'], ondelete='SET NULL')
    op.create_index(op.f('ix_booking_rate_plan_id'), 'booking', ['rate_plan_id'], unique=False)
    op.alter_column('booking', 'total_amount', type_=sa.Numeric(), existing_type=sa.Numeric(12, 2),
                    existing_nullable=False)
    op.alter_column('sale_order', 'total_amount', type_=sa.Numeric(), existing_type=sa.Numeric(12, 2),
                    existing_nullable=False)


def downgrade() -> None:
    op.alter_column('sale_order', 'total_amount', type_=sa.Numeric(12, 2), existing_type=sa.Numeric(),
                    existing_nullable=False)
    op.alter_column('booking', 'total_amount', type_=sa.Numeric(12, 2), existing_type=sa.Numeric(),
                    existing_nullable=False)
    op.drop_index(op.f('ix_booking_rate_plan_id'), table_name='booking')
    op.drop_constraint(op.f('fk_booking_rate_plan_id_rate_plan'), 'booking', type_='foreignkey')
    op.drop_column('booking', 'rate_plan_version')
    op.drop_column('booking', 'rate_plan_id')
    op.drop_column('booking', 'net_amount')
    op.drop_column('booking', 'nights')
    op.drop_index(op.f('ix_rate_plan_hotel_id'), table_name='rate_plan')
    op.drop_table('rate_plan')
    op.drop_constraint(op.f('ck_agency_tier_format'), 'agency', type_='check')
    op.drop_column('agency', 'tier')
