"""SKUs counted, channels adopted, listings held back (onboarding a live shop)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 12:00:00

A SKU whose on hand was never counted (it came with an order) and a channel never adopted:
the push does not lower the channel's quantity for it (docs/onboarding.md). SKUs of an
existing ledger that a count set (a `stock.set` audit entry) are counted from then.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sku', schema=None) as batch_op:
        batch_op.add_column(sa.Column('counted_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('listing', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('channel_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('adopted_at', sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE sku SET counted_at = (SELECT MIN(audit_entry.at) FROM audit_entry "
        "WHERE audit_entry.action = 'stock.set' AND audit_entry.subject = sku.code)"
    )


def downgrade() -> None:
    with op.batch_alter_table('channel_state', schema=None) as batch_op:
        batch_op.drop_column('adopted_at')
    with op.batch_alter_table('listing', schema=None) as batch_op:
        batch_op.drop_column('held_at')
    with op.batch_alter_table('sku', schema=None) as batch_op:
        batch_op.drop_column('counted_at')
