"""Balance-due reminders of DEPOSIT sales: one claim row per sale order, so the reminder is sent
once across workers

Revision ID: e8f3b1a7c2d4
Revises: d7e2a9c4f1b6
Create Date: 2026-12-01 03:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'e8f3b1a7c2d4'
down_revision = 'd7e2a9c4f1b6'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'balance_reminder',
        sa.Column('sale_order_id', sa.Integer(), nullable=False),
        sa.Column('email_id', sa.BigInteger(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['sale_order_id'], ['sale_order.id'],
                                name=op.f('fk_balance_reminder_sale_order_id_sale_order'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('sale_order_id', name=op.f('pk_balance_reminder')),
    )


def downgrade() -> None:
    op.drop_table('balance_reminder')
