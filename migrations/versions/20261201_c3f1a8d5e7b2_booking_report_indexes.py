"""Booking indexes for the reports: a covering btree on the stay for revenue's bookings wholly
inside the range (an index-only scan, never the wide heap with `nights`), and a GiST on the stay as
a daterange for the bookings straddling the range's edges (revenue's night-by-night split)

Revision ID: c3f1a8d5e7b2
Revises: b6d0e4a2c918
Create Date: 2026-12-01 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'c3f1a8d5e7b2'
down_revision = 'b6d0e4a2c918'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Building them on a big booking table takes longer than the app's statement timeout (15 s).
    op.execute("SET LOCAL statement_timeout = 0")
    op.create_index('ix_booking_stay_report', 'booking', ['check_in', 'check_out'], unique=False,
                    postgresql_include=['status', 'hotel_id', 'agency_id', 'room_type_id', 'group_id', 'rooms',
                                        'total_amount', 'net_amount', 'currency'])
    op.create_index('ix_booking_stay_range', 'booking', [sa.text('daterange(check_in, check_out)')], unique=False,
                    postgresql_using='gist')


def downgrade() -> None:
    op.drop_index('ix_booking_stay_range', table_name='booking', postgresql_using='gist')
    op.drop_index('ix_booking_stay_report', table_name='booking')
