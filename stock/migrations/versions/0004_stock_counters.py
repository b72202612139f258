"""stock_level counters: reserved and backordered units per SKU

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('stock_level', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reserved', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('backordered', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_check_constraint(
            op.f('ck_stock_level_counters_not_negative'), 'reserved >= 0 AND backordered >= 0'
        )
    # the counters start equal to the rows they summarise
    op.execute(
        "UPDATE stock_level SET "
        "reserved = COALESCE((SELECT SUM(qty) FROM reservation "
        "WHERE reservation.sku_id = stock_level.sku_id), 0), "
        "backordered = COALESCE((SELECT SUM(qty_open) FROM backorder "
        "WHERE backorder.sku_id = stock_level.sku_id), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table('stock_level', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_stock_level_counters_not_negative'), type_='check')
        batch_op.drop_column('backordered')
        batch_op.drop_column('reserved')
