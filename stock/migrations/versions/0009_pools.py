"""Channel pools: allotments per SKU and channel, moves between channels

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 13:00:00

A pooled SKU's sellable units are split into allotments, so shops selling faster than any
webhook can tell the others never sell more together than the ledger holds (issue #14).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# the models' types, spelled out: a migration must not change when the models do
Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
UtcDateTime = sa.DateTime(timezone=True)

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'pool_share',
        sa.Column('id', Id, nullable=False),
        sa.Column('sku_id', Id, nullable=False),
        sa.Column('channel', sa.String(length=64), nullable=False),
        sa.Column('allotted', sa.Integer(), nullable=False),
        sa.Column('updated_at', UtcDateTime, nullable=False),
        sa.ForeignKeyConstraint(['sku_id'], ['sku.id'], name=op.f('fk_pool_share_sku_id_sku')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_pool_share')),
        sa.UniqueConstraint('sku_id', 'channel', name='sku_channel'),
    )
    op.create_table(
        'pool_move',
        sa.Column('id', Id, nullable=False),
        sa.Column('sku_id', Id, nullable=False),
        sa.Column('from_channel', sa.String(length=64), nullable=False),
        sa.Column('to_channel', sa.String(length=64), nullable=False),
        sa.Column('units', sa.Integer(), nullable=False),
        sa.Column('units_given', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('why', sa.Text(), nullable=False),
        sa.Column('created_at', UtcDateTime, nullable=False),
        sa.Column('done_at', UtcDateTime, nullable=True),
        sa.CheckConstraint("status IN ('shrinking', 'done')", name=op.f('ck_pool_move_status_known')),
        sa.CheckConstraint('units > 0', name=op.f('ck_pool_move_units_positive')),
        sa.ForeignKeyConstraint(['sku_id'], ['sku.id'], name=op.f('fk_pool_move_sku_id_sku')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_pool_move')),
    )
    op.create_index('ix_pool_move_open', 'pool_move', ['sku_id', 'status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_pool_move_open', table_name='pool_move')
    op.drop_table('pool_move')
    op.drop_table('pool_share')
