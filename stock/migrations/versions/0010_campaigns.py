"""Campaigns: waitlist entries and per-campaign state

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 14:00:00

Limited-drop campaigns (issue #15): sign-ups, their allocations in waves with a deadline to pay,
and each campaign's waves, lottery seed and close.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# the models' types, spelled out: a migration must not change when the models do
Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
UtcDateTime = sa.DateTime(timezone=True)

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'campaign_entry',
        sa.Column('id', Id, nullable=False),
        sa.Column('campaign', sa.String(length=64), nullable=False),
        sa.Column('sku_id', Id, nullable=False),
        sa.Column('qty', sa.Integer(), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=False),
        sa.Column('phone', sa.String(length=64), nullable=True),
        sa.Column('country', sa.String(length=2), nullable=True),
        sa.Column('address', sa.Text(), nullable=True),
        sa.Column('tier', sa.String(length=64), nullable=True),
        sa.Column('keys', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('token', sa.String(length=64), nullable=False),
        sa.Column('signed_up_at', UtcDateTime, nullable=False),
        sa.Column('review_reason', sa.Text(), nullable=True),
        sa.Column('wave', sa.Integer(), nullable=True),
        sa.Column('tier_reserve', sa.String(length=64), nullable=True),
        sa.Column('allocated_at', UtcDateTime, nullable=True),
        sa.Column('expires_at', UtcDateTime, nullable=True),
        sa.Column('channel', sa.String(length=64), nullable=True),
        sa.Column('order_ref', sa.String(length=255), nullable=True),
        sa.Column('updated_at', UtcDateTime, nullable=False),
        sa.CheckConstraint(
            "status IN ('waiting', 'review', 'allocated', 'confirmed', 'expired', 'declined', "
            "'not_allocated')",
            name=op.f('ck_campaign_entry_status_known'),
        ),
        sa.CheckConstraint('qty > 0', name=op.f('ck_campaign_entry_qty_positive')),
        sa.ForeignKeyConstraint(['sku_id'], ['sku.id'], name=op.f('fk_campaign_entry_sku_id_sku')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_entry')),
        sa.UniqueConstraint('token', name=op.f('uq_campaign_entry_token')),
    )
    op.create_index(
        'ix_campaign_entry_queue', 'campaign_entry', ['campaign', 'status', 'sku_id'], unique=False
    )
    op.create_table(
        'campaign_identity',
        sa.Column('id', Id, nullable=False),
        sa.Column('campaign', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('value', sa.String(length=400), nullable=False),
        sa.Column('entry_id', Id, nullable=False),
        sa.ForeignKeyConstraint(
            ['entry_id'], ['campaign_entry.id'],
            name=op.f('fk_campaign_identity_entry_id_campaign_entry'),
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_identity')),
    )
    op.create_index(
        'ix_campaign_identity_key', 'campaign_identity', ['campaign', 'kind', 'value'],
        unique=False,
    )
    op.create_index(
        op.f('ix_campaign_identity_entry_id'), 'campaign_identity', ['entry_id'], unique=False
    )
    op.create_table(
        'campaign_state',
        sa.Column('campaign', sa.String(length=64), nullable=False),
        sa.Column('waves', sa.Integer(), nullable=False),
        sa.Column('last_wave_at', UtcDateTime, nullable=True),
        sa.Column('seed', sa.BigInteger(), nullable=True),
        sa.Column('closed_at', UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint('campaign', name=op.f('pk_campaign_state')),
    )


def downgrade() -> None:
    op.drop_table('campaign_state')
    op.drop_table('campaign_identity')
    op.drop_index('ix_campaign_entry_queue', table_name='campaign_entry')
    op.drop_table('campaign_entry')
