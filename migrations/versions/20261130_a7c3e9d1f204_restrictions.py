"""allotment_event: RESTRICTION events (minStay, maxStay, closedToArrival, closedToDeparture, the
advance window) and the agencies they bind (empty: every agency)

Revision ID: a7c3e9d1f204
Revises: 9f3b6d1e2a84
Create Date: 2026-11-30 21:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = 'a7c3e9d1f204'
down_revision = '9f3b6d1e2a84'
branch_labels = None
depends_on = None

_KINDS = ('INCREASE_ALLOTMENT', 'REDUCE_ALLOTMENT', 'BLOCK_CONTRACT', 'BLOCK_AMENDMENT', 'RATE_CHANGE')


def _kinds(kinds: tuple[str, ...]) -> str:
    return f"kind IN ({', '.join(repr(k) for k in kinds)})"


def upgrade() -> None:
    op.add_column('allotment_event', sa.Column('min_stay', sa.Integer(), nullable=True))
    op.add_column('allotment_event', sa.Column('max_stay', sa.Integer(), nullable=True))
    op.add_column('allotment_event', sa.Column('closed_to_arrival', sa.Boolean(), nullable=True))
    op.add_column('allotment_event', sa.Column('closed_to_departure', sa.Boolean(), nullable=True))
    op.add_column('allotment_event', sa.Column('min_advance_days', sa.Integer(), nullable=True))
    op.add_column('allotment_event', sa.Column('max_advance_days', sa.Integer(), nullable=True))
    op.add_column('allotment_event', sa.Column(
        'agency_ids', postgresql.ARRAY(sa.Integer()), server_default='{}', nullable=False))
    op.drop_constraint(op.f('ck_allotment_event_kind_known'), 'allotment_event', type_='check')
    op.create_check_constraint(op.f('ck_allotment_event_kind_known'), 'allotment_event',
                               _kinds(_KINDS + ('RESTRICTION',)))


def downgrade() -> None:
    op.execute("DELETE FROM allotment_event WHERE kind = 'RESTRICTION'")
    op.drop_constraint(op.f('ck_allotment_event_kind_known'), 'allotment_event', type_='check')
    op.create_check_constraint(op.f('ck_allotment_event_kind_known'), 'allotment_event', _kinds(_KINDS))
    for column in ('agency_ids', 'max_advance_days', 'min_advance_days', 'closed_to_departure',
                   'closed_to_arrival', 'max_stay', 'min_stay'):
        op.drop_column('allotment_event', column)
