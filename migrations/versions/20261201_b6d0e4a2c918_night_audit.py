"""The night audit: one immutable row per hotel and business date

Revision ID: b6d0e4a2c918
Revises: f5a7c9e1b3d2
Create Date: 2026-12-01 00:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = 'b6d0e4a2c918'
down_revision = 'f5a7c9e1b3d2'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'night_audit',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('hotel_id', sa.Integer(), nullable=False),
        sa.Column('business_date', sa.Date(), nullable=False),
        sa.Column('closed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('room_nights_sold', sa.Integer(), nullable=False),
        sa.Column('revenue_amount', sa.Numeric(), nullable=False),
        sa.Column('revenue_currency', sa.String(length=3), nullable=False),
        sa.Column('arrivals', sa.Integer(), nullable=False),
        sa.Column('departures', sa.Integer(), nullable=False),
        sa.Column('holds_expired', sa.Integer(), nullable=False),
        sa.Column('overcommitted_cells', sa.Integer(), nullable=False),
        sa.Column('discrepancies', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"),
                  nullable=False),
        sa.Column('created_by', sa.String(length=128), nullable=False),
        sa.CheckConstraint("revenue_currency ~ '^[A-Z]{3}$'", name=op.f('ck_night_audit_currency_iso')),
        sa.ForeignKeyConstraint(['hotel_id'], ['hotel.id'], name=op.f('fk_night_audit_hotel_id_hotel'),
                                ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_night_audit')),
        sa.UniqueConstraint('hotel_id', 'business_date', name='uq_night_audit_hotel_date'),
    )
    op.create_index(op.f('ix_night_audit_hotel_id'), 'night_audit', ['hotel_id'], unique=False)
    # Closed means closed: a correction is a discrepancy of a later audit, never an edit.
    op.execute(
        """
        CREATE FUNCTION night_audit_is_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'night_audit is immutable once written (% refused)', TG_OP;
        END $$
        """
    )
    op.execute("CREATE TRIGGER night_audit_immutable BEFORE UPDATE OR DELETE ON night_audit "
               "FOR EACH ROW EXECUTE FUNCTION night_audit_is_immutable()")
    op.execute("CREATE TRIGGER night_audit_no_truncate BEFORE TRUNCATE ON night_audit "
               "FOR EACH STATEMENT EXECUTE FUNCTION night_audit_is_immutable()")


def downgrade() -> None:
    op.execute("DROP TRIGGER night_audit_no_truncate ON night_audit")
    op.execute("DROP TRIGGER night_audit_immutable ON night_audit")
    op.drop_index(op.f('ix_night_audit_hotel_id'), table_name='night_audit')
    op.drop_table('night_audit')
    op.execute("DROP FUNCTION night_audit_is_immutable()")
