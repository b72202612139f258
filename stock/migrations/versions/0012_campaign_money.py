"""Campaign money: accepted terms per entry, deposits, balances and refunds

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 05:00:00

Issue #16: each entry keeps the payment terms its customer accepted (and the new terms offered
when the campaign's change, until the customer chooses); `campaign_money` records
every deposit, balance and refund with its idempotency key (nothing paid or refunded twice);
an entry may end `cancelled` (the customer changed their mind after paying).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# the models' types, spelled out: a migration must not change when the models do
Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
UtcDateTime = sa.DateTime(timezone=True)

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

OLD_STATUSES = (
    "status IN ('waiting', 'review', 'allocated', 'confirmed', 'expired', 'declined', "
    "'not_allocated')"
)
NEW_STATUSES = (
    "status IN ('waiting', 'review', 'allocated', 'confirmed', 'expired', 'declined', "
    "'not_allocated', 'cancelled')"
)


def upgrade() -> None:
    with op.batch_alter_table('campaign_entry') as batch:
        batch.add_column(sa.Column('terms', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('terms_offer', sa.JSON(), nullable=True))
        batch.drop_constraint(op.f('ck_campaign_entry_status_known'), type_='check')
        batch.create_check_constraint('status_known', NEW_STATUSES)
    with op.batch_alter_table('campaign_state') as batch:
        batch.add_column(sa.Column('terms_seen', sa.String(length=64), nullable=True))
    op.create_table(
        'campaign_money',
        sa.Column('id', Id, nullable=False),
        sa.Column('entry_id', Id, nullable=False),
        sa.Column('campaign', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('amount_minor', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('channel', sa.String(length=64), nullable=True),
        sa.Column('order_ref', sa.String(length=255), nullable=True),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('shop_ref', sa.String(length=255), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('claimed_at', UtcDateTime, nullable=True),
        sa.Column('due_at', UtcDateTime, nullable=True),
        sa.Column('created_at', UtcDateTime, nullable=False),
        sa.Column('updated_at', UtcDateTime, nullable=False),
        sa.CheckConstraint(
            "kind IN ('deposit', 'balance', 'refund')", name=op.f('ck_campaign_money_kind_known')
        ),
        sa.CheckConstraint(
            "state IN ('planned', 'paid', 'refunded', 'by_hand', 'failed', 'waived')",
            name=op.f('ck_campaign_money_state_known'),
        ),
        sa.CheckConstraint('amount_minor >= 0', name=op.f('ck_campaign_money_amount_not_negative')),
        sa.ForeignKeyConstraint(
            ['entry_id'], ['campaign_entry.id'], name=op.f('fk_campaign_money_entry_id_campaign_entry')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_money')),
        sa.UniqueConstraint('key', name=op.f('uq_campaign_money_key')),
    )
    op.create_index(op.f('ix_campaign_money_entry_id'), 'campaign_money', ['entry_id'], unique=False)
    op.create_index('ix_campaign_money_state', 'campaign_money', ['state'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_campaign_money_state', table_name='campaign_money')
    op.drop_index(op.f('ix_campaign_money_entry_id'), table_name='campaign_money')
    op.drop_table('campaign_money')
    with op.batch_alter_table('campaign_state') as batch:
        batch.drop_column('terms_seen')
    with op.batch_alter_table('campaign_entry') as batch:
        batch.drop_constraint(op.f('ck_campaign_entry_status_known'), type_='check')
        batch.create_check_constraint('status_known', OLD_STATUSES)
        batch.drop_column('terms_offer')
        batch.drop_column('terms')
