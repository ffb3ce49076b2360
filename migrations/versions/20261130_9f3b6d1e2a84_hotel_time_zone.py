"""hotel.time_zone: every hotel's nights are its local calendar's (existing hotels: UTC, which
changes nothing for them)

Revision ID: 9f3b6d1e2a84
Revises: 5d1e8f0a2c47
Create Date: 2026-11-30 20:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '9f3b6d1e2a84'
down_revision = '5d1e8f0a2c47'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('hotel', sa.Column('time_zone', sa.String(length=64), server_default='UTC', nullable=False))


def downgrade() -> None:
    op.drop_column('hotel', 'time_zone')
