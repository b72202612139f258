"""Campaign payments on the shops, reminders, stock seen by campaigns

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 04:00:00

An allocated entry that pays on a shop gets a payment request there (a Shopify draft order, a
WooCommerce pending order): its state, the shop's reference and the link the customer pays at.
`reminded_at` marks the reminder sent before the deadline; `stock_seen` is the stock a
campaign last saw per SKU, so a rise invites the next in line at once (issue #15).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# the models' types, spelled out: a migration must not change when the models do
UtcDateTime = sa.DateTime(timezone=True)

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaign_entry') as batch:
        batch.add_column(sa.Column('pay_channel', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('pay_state', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('pay_ref', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('pay_url', sa.Text(), nullable=True))
        batch.add_column(sa.Column('pay_claimed_at', UtcDateTime, nullable=True))
        batch.add_column(sa.Column('pay_error', sa.Text(), nullable=True))
        batch.add_column(sa.Column('reminded_at', UtcDateTime, nullable=True))
    op.create_index(
        'ix_campaign_entry_pay_state', 'campaign_entry', ['pay_state'], unique=False
    )
    with op.batch_alter_table('campaign_state') as batch:
        batch.add_column(sa.Column('stock_seen', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('campaign_state') as batch:
        batch.drop_column('stock_seen')
    op.drop_index('ix_campaign_entry_pay_state', table_name='campaign_entry')
    with op.batch_alter_table('campaign_entry') as batch:
        for column in ('reminded_at', 'pay_error', 'pay_claimed_at', 'pay_url', 'pay_ref',
                       'pay_state', 'pay_channel'):
            batch.drop_column(column)
