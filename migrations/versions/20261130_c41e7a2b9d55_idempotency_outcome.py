"""idempotency_key.outcome: what a keyed write other than createBooking answered

Revision ID: c41e7a2b9d55
Revises: 8b4d2f6a1c03
Create Date: 2026-11-30 17:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = 'c41e7a2b9d55'
down_revision = '8b4d2f6a1c03'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('idempotency_key', sa.Column('outcome', postgresql.JSONB(astext_type=sa.Text()), nullable=True))


def downgrade() -> None:
    op.drop_column('idempotency_key', 'outcome')
