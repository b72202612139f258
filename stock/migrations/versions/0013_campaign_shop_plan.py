"""Campaign selling plans on Shopify channels

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 07:00:00

Issue #16: a deposit campaign sells on Shopify through a selling plan stocksync keeps in step
with the campaign's terms; a checkout through the plan is a sign-up, found by the plan's id.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# the models' types, spelled out: a migration must not change when the models do
Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
UtcDateTime = sa.DateTime(timezone=True)

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'campaign_shop_plan',
        sa.Column('id', Id, nullable=False),
        sa.Column('campaign', sa.String(length=64), nullable=False),
        sa.Column('channel', sa.String(length=64), nullable=False),
        sa.Column('group_ref', sa.String(length=255), nullable=True),
        sa.Column('plan_ref', sa.String(length=255), nullable=True),
        sa.Column('known_plans', sa.JSON(), nullable=True),
        sa.Column('digest', sa.String(length=64), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('claimed_at', UtcDateTime, nullable=True),
        sa.Column('synced_at', UtcDateTime, nullable=True),
        sa.Column('updated_at', UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_shop_plan')),
        sa.UniqueConstraint('campaign', 'channel', name='campaign_channel'),
    )
    op.create_index(
        op.f('ix_campaign_shop_plan_plan_ref'), 'campaign_shop_plan', ['plan_ref'], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f('ix_campaign_shop_plan_plan_ref'), table_name='campaign_shop_plan')
    op.drop_table('campaign_shop_plan')
