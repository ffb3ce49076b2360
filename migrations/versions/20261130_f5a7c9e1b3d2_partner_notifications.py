"""Partner notifications: webhook endpoints, the partner events every committed write records
(through triggers on audit_log and outbox, in the write's own transaction), their webhook
deliveries and attempts, emails, release alerts and hold-expiry notices; agency.contact_email

Revision ID: f5a7c9e1b3d2
Revises: e2b8c4f6a913
Create Date: 2026-11-30 23:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = 'f5a7c9e1b3d2'
down_revision = 'e2b8c4f6a913'
branch_labels = None
depends_on = None

# Audit actions that are partner events, and the event type each one is.
EVENT_TYPES = {
    "booking_group.created": "booking_group.held",
    "booking_group.confirmed": "booking_group.confirmed",
    "booking_group.cancelled": "booking_group.cancelled",
    "booking_group.expired": "booking_group.expired",
    "hardblock.created": "hardblock.created",
    "hardblock.amended": "hardblock.amended",
    "hardblock.rooms_returned": "hardblock.amended",
    "hardblock.amendment_reverted": "hardblock.amended",
    "hardblock.extended": "hardblock.amended",
    "hardblock.nights_released": "hardblock.released",
    "hardblock.released": "hardblock.released",
}


def _ts(name: str, nullable: bool = True, now: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable,
                     server_default=sa.text('now()') if now else None)


def upgrade() -> None:
    op.add_column('agency', sa.Column('contact_email', sa.String(length=254), nullable=True))
    op.create_table(
        'webhook_endpoint',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('agency_id', sa.Integer(), nullable=True),
        sa.Column('url', sa.String(length=2000), nullable=False),
        sa.Column('events', postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column('secret', sa.String(length=100), nullable=False),
        sa.Column('previous_secret', sa.String(length=100), nullable=True),
        _ts('previous_secret_until'),
        sa.Column('enabled', sa.Boolean(), server_default=sa.text('true'), nullable=False),
        sa.Column('disabled_reason', sa.String(length=500), nullable=True),
        _ts('disabled_at'),
        _ts('failing_since'),
        sa.Column('created_by', sa.String(length=128), nullable=False),
        _ts('created_at', nullable=False, now=True),
        _ts('updated_at', nullable=False, now=True),
        sa.ForeignKeyConstraint(['agency_id'], ['agency.id'], name=op.f('fk_webhook_endpoint_agency_id_agency'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoint')),
    )
    op.create_index(op.f('ix_webhook_endpoint_agency_id'), 'webhook_endpoint', ['agency_id'], unique=False)
    op.create_table(
        'partner_event',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('type', sa.String(length=64), nullable=False),
        sa.Column('agency_id', sa.Integer(), nullable=True),
        sa.Column('hotel_id', sa.Integer(), nullable=True),
        sa.Column('entity_type', sa.String(length=32), nullable=True),
        sa.Column('entity_id', sa.BigInteger(), nullable=True),
        sa.Column('audit_id', sa.BigInteger(), nullable=True),
        sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        _ts('created_at', nullable=False, now=True),
        _ts('fanned_out_at'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_partner_event')),
    )
    op.create_index('ix_partner_event_pending', 'partner_event', ['id'], unique=False,
                    postgresql_where=sa.text('fanned_out_at IS NULL'))
    op.create_table(
        'webhook_delivery',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('event_id', sa.BigInteger(), nullable=False),
        sa.Column('endpoint_id', sa.Integer(), nullable=False),
        sa.Column('webhook_id', sa.String(length=64), nullable=False),
        sa.Column('event_type', sa.String(length=64), nullable=False),
        sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('status', sa.String(length=16), server_default='PENDING', nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        _ts('next_attempt_at', nullable=False, now=True),
        _ts('lease_until'),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.String(length=500), nullable=True),
        _ts('delivered_at'),
        _ts('created_at', nullable=False, now=True),
        sa.CheckConstraint("status IN ('PENDING', 'DELIVERED', 'FAILED', 'GAVE_UP')",
                           name=op.f('ck_webhook_delivery_status_known')),
        sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoint.id'],
                                name=op.f('fk_webhook_delivery_endpoint_id_webhook_endpoint'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['event_id'], ['partner_event.id'],
                                name=op.f('fk_webhook_delivery_event_id_partner_event')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_delivery')),
        sa.UniqueConstraint('event_id', 'endpoint_id', name='uq_webhook_delivery_event_endpoint'),
        sa.UniqueConstraint('webhook_id', name=op.f('uq_webhook_delivery_webhook_id')),
    )
    op.create_index(op.f('ix_webhook_delivery_endpoint_id'), 'webhook_delivery', ['endpoint_id'], unique=False)
    op.create_index(op.f('ix_webhook_delivery_event_id'), 'webhook_delivery', ['event_id'], unique=False)
    op.create_index('ix_webhook_delivery_due', 'webhook_delivery', ['next_attempt_at'], unique=False,
                    postgresql_where=sa.text("status IN ('PENDING', 'FAILED')"))
    op.create_table(
        'webhook_attempt',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('delivery_id', sa.BigInteger(), nullable=False),
        _ts('at', nullable=False, now=True),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('error', sa.String(length=500), nullable=True),
        sa.Column('duration_ms', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['delivery_id'], ['webhook_delivery.id'],
                                name=op.f('fk_webhook_attempt_delivery_id_webhook_delivery'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_attempt')),
    )
    op.create_index(op.f('ix_webhook_attempt_delivery_id'), 'webhook_attempt', ['delivery_id'], unique=False)
    op.create_table(
        'email_message',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('event_id', sa.BigInteger(), nullable=True),
        sa.Column('agency_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('to_address', sa.String(length=254), nullable=False),
        sa.Column('subject', sa.String(length=300), nullable=False),
        sa.Column('text_body', sa.Text(), nullable=False),
        sa.Column('html_body', sa.Text(), nullable=False),
        sa.Column('message_id', sa.String(length=200), nullable=False),
        sa.Column('status', sa.String(length=16), server_default='PENDING', nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        _ts('next_attempt_at', nullable=False, now=True),
        _ts('lease_until'),
        sa.Column('last_error', sa.String(length=500), nullable=True),
        _ts('sent_at'),
        _ts('created_at', nullable=False, now=True),
        sa.CheckConstraint("status IN ('PENDING', 'SENT', 'RECORDED', 'FAILED', 'GAVE_UP')",
                           name=op.f('ck_email_message_status_known')),
        sa.ForeignKeyConstraint(['agency_id'], ['agency.id'], name=op.f('fk_email_message_agency_id_agency'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['event_id'], ['partner_event.id'], name=op.f('fk_email_message_event_id_partner_event')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_email_message')),
        sa.UniqueConstraint('event_id', 'kind', name='uq_email_message_event_kind'),
    )
    op.create_index(op.f('ix_email_message_agency_id'), 'email_message', ['agency_id'], unique=False)
    op.create_index('ix_email_message_due', 'email_message', ['next_attempt_at'], unique=False,
                    postgresql_where=sa.text("status IN ('PENDING', 'FAILED')"))
    op.create_table(
        'release_alert',
        sa.Column('hardblock_id', sa.Integer(), nullable=False),
        sa.Column('night', sa.Date(), nullable=False),
        sa.Column('threshold_hours', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.BigInteger(), nullable=True),
        _ts('created_at', nullable=False, now=True),
        sa.ForeignKeyConstraint(['hardblock_id'], ['hardblock.id'], name=op.f('fk_release_alert_hardblock_id_hardblock'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('hardblock_id', 'night', 'threshold_hours', name=op.f('pk_release_alert')),
    )
    op.create_table(
        'hold_expiry_notice',
        sa.Column('group_id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.BigInteger(), nullable=True),
        _ts('created_at', nullable=False, now=True),
        sa.ForeignKeyConstraint(['group_id'], ['booking_group.id'],
                                name=op.f('fk_hold_expiry_notice_group_id_booking_group'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('group_id', name=op.f('pk_hold_expiry_notice')),
    )
    # The capture: a committed write's audit entries and inventory changes become partner events
    # in the same transaction (a rolled-back write leaves none); dispatchers fan them out later.
    cases = " ".join(f"WHEN '{action}' THEN '{kind}'" for action, kind in EVENT_TYPES.items())
    actions = ", ".join(f"'{action}'" for action in EVENT_TYPES)
    op.execute(f"""
        CREATE FUNCTION partner_event_from_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO partner_event (type, agency_id, hotel_id, entity_type, entity_id, audit_id, created_at)
            SELECT CASE NEW.action {cases} END, x.agency_id, x.hotel_id, NEW.entity_type, NEW.entity_id, NEW.id, NEW.at
            FROM (SELECT g.agency_id, (SELECT min(b.hotel_id) FROM booking AS b WHERE b.group_id = g.id) AS hotel_id
                  FROM booking_group AS g WHERE NEW.entity_type = 'BookingGroup' AND g.id = NEW.entity_id
                  UNION ALL
                  SELECT h.agency_id, h.hotel_id FROM hardblock AS h
                  WHERE NEW.entity_type = 'Hardblock' AND h.id = NEW.entity_id) AS x;
            RETURN NULL;
        END $$
    """)
    op.execute(f"""
        CREATE TRIGGER audit_log_partner_events AFTER INSERT ON audit_log FOR EACH ROW
        WHEN (NEW.action IN ({actions})) EXECUTE FUNCTION partner_event_from_audit()
    """)
    op.execute("""
        CREATE FUNCTION partner_event_from_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO partner_event (type, hotel_id, payload, created_at)
            VALUES ('availability.changed', CAST(NEW.payload->>'hotelId' AS integer),
                    jsonb_build_object('hotelId', NEW.payload->'hotelId', 'version', NEW.payload->'version',
                                       'roomTypeIds', NEW.payload->'roomTypeIds', 'from', NEW.payload->'from',
                                       'to', NEW.payload->'to'),
                    NEW.created_at);
            RETURN NULL;
        END $$
    """)
    op.execute("""
        CREATE TRIGGER outbox_partner_events AFTER INSERT ON outbox FOR EACH ROW
        WHEN (NEW.topic = 'inventory.change') EXECUTE FUNCTION partner_event_from_change()
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER outbox_partner_events ON outbox")
    op.execute("DROP FUNCTION partner_event_from_change()")
    op.execute("DROP TRIGGER audit_log_partner_events ON audit_log")
    op.execute("DROP FUNCTION partner_event_from_audit()")
    op.drop_table('hold_expiry_notice')
    op.drop_table('release_alert')
    op.drop_index('ix_email_message_due', table_name='email_message')
    op.drop_index(op.f('ix_email_message_agency_id'), table_name='email_message')
    op.drop_table('email_message')
    op.drop_index(op.f('ix_webhook_attempt_delivery_id'), table_name='webhook_attempt')
    op.drop_table('webhook_attempt')
    op.drop_index('ix_webhook_delivery_due', table_name='webhook_delivery')
    op.drop_index(op.f('ix_webhook_delivery_event_id'), table_name='webhook_delivery')
    op.drop_index(op.f('ix_webhook_delivery_endpoint_id'), table_name='webhook_delivery')
    op.drop_table('webhook_delivery')
    op.drop_index('ix_partner_event_pending', table_name='partner_event')
    op.drop_table('partner_event')
    op.drop_index(op.f('ix_webhook_endpoint_agency_id'), table_name='webhook_endpoint')
    op.drop_table('webhook_endpoint')
    op.drop_column('agency', 'contact_email')
