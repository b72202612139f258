"""Promise dates, customer messages, merchant alerts, supplier receipts

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 07:00:00

Issue #17: each open backorder keeps the date its customer was promised (and the date it moved
from when a re-plan moved it later); orders keep the customer's email and language; messages
go out through `notify_message` (one per event and target, retried, never twice); merchant
alerts open one `alert_incident` per incident; `notify_cursor` says how far the audit log
(the event log) has been turned into messages; every PO receipt is a `po_receipt` row with the
ETA it was due by, and a PO keeps its supplier's first ETA.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# the models' types, spelled out: a migration must not change when the models do
Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
UtcDateTime = sa.DateTime(timezone=True)

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('backorder') as batch:
        batch.add_column(sa.Column('promised_on', sa.Date(), nullable=True))
        batch.add_column(sa.Column('promise_planned_at', UtcDateTime, nullable=True))
        batch.add_column(sa.Column('promise_moved_from', sa.Date(), nullable=True))
        batch.add_column(sa.Column('promise_moved_at', UtcDateTime, nullable=True))
    with op.batch_alter_table('stock_level') as batch:
        batch.add_column(
            sa.Column('promises_due', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table('channel_order') as batch:
        batch.add_column(sa.Column('email', sa.String(length=320), nullable=True))
        batch.add_column(sa.Column('language', sa.String(length=16), nullable=True))
    with op.batch_alter_table('purchase_order') as batch:
        batch.add_column(sa.Column('original_eta', sa.Date(), nullable=True))
    op.execute('UPDATE purchase_order SET original_eta = eta')
    op.create_table(
        'po_receipt',
        sa.Column('id', Id, nullable=False),
        sa.Column('po_id', Id, nullable=False),
        sa.Column('sku_id', Id, nullable=False),
        sa.Column('qty', sa.Integer(), nullable=False),
        sa.Column('eta', sa.Date(), nullable=False),
        sa.Column('received_at', UtcDateTime, nullable=False),
        sa.CheckConstraint('qty > 0', name=op.f('ck_po_receipt_qty_positive')),
        sa.ForeignKeyConstraint(
            ['po_id'], ['purchase_order.id'], name=op.f('fk_po_receipt_po_id_purchase_order')
        ),
        sa.ForeignKeyConstraint(['sku_id'], ['sku.id'], name=op.f('fk_po_receipt_sku_id_sku')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_po_receipt')),
    )
    op.create_index(op.f('ix_po_receipt_po_id'), 'po_receipt', ['po_id'], unique=False)
    op.create_table(
        'notify_message',
        sa.Column('id', Id, nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('event', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('target', sa.String(length=500), nullable=False),
        sa.Column('language', sa.String(length=16), nullable=True),
        sa.Column('subject', sa.Text(), nullable=True),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', UtcDateTime, nullable=False),
        sa.Column('claimed_at', UtcDateTime, nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', UtcDateTime, nullable=False),
        sa.Column('sent_at', UtcDateTime, nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'sent', 'failed')", name=op.f('ck_notify_message_state_known')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notify_message')),
        sa.UniqueConstraint('key', name=op.f('uq_notify_message_key')),
    )
    op.create_index(
        'ix_notify_message_due', 'notify_message', ['state', 'next_attempt_at'], unique=False
    )
    op.create_index('ix_audit_entry_action', 'audit_entry', ['action', 'subject'], unique=False)
    op.create_index('ix_channel_order_placed_at', 'channel_order', ['placed_at'], unique=False)
    op.create_table(
        'notify_cursor',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('last_audit_id', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_notify_cursor')),
    )
    op.create_table(
        'alert_incident',
        sa.Column('id', Id, nullable=False),
        sa.Column('kind', sa.String(length=64), nullable=False),
        sa.Column('subject', sa.String(length=255), nullable=False),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.Column('opened_at', UtcDateTime, nullable=False),
        sa.Column('last_seen_at', UtcDateTime, nullable=False),
        sa.Column('closed_at', UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_incident')),
    )
    op.create_index(
        'ix_alert_incident_open', 'alert_incident', ['kind', 'subject', 'closed_at'], unique=False
    )


def downgrade() -> None:
    op.drop_index('ix_alert_incident_open', table_name='alert_incident')
    op.drop_table('alert_incident')
    op.drop_table('notify_cursor')
    op.drop_index('ix_channel_order_placed_at', table_name='channel_order')
    op.drop_index('ix_audit_entry_action', table_name='audit_entry')
    op.drop_index('ix_notify_message_due', table_name='notify_message')
    op.drop_table('notify_message')
    op.drop_index(op.f('ix_po_receipt_po_id'), table_name='po_receipt')
    op.drop_table('po_receipt')
    with op.batch_alter_table('purchase_order') as batch:
        batch.drop_column('original_eta')
    with op.batch_alter_table('stock_level') as batch:
        batch.drop_column('promises_due')
    with op.batch_alter_table('channel_order') as batch:
        batch.drop_column('language')
        batch.drop_column('email')
    with op.batch_alter_table('backorder') as batch:
        batch.drop_column('promise_moved_at')
        batch.drop_column('promise_moved_from')
        batch.drop_column('promise_planned_at')
        batch.drop_column('promised_on')
