"""Quantity writes in flight to channels with absolute writes (WooCommerce)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 12:00:00

A write recorded before the call and deleted when answered; one left behind may land late, so
the listing is re-read once its window has passed (issue #13, sync/jobs/push.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# the models' types, spelled out: a migration must not change when the models do
Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
UtcDateTime = sa.DateTime(timezone=True)

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'push_in_flight',
        sa.Column('id', Id, nullable=False),
        sa.Column('channel', sa.String(length=64), nullable=False),
        sa.Column('listing_id', Id, nullable=False),
        sa.Column('attempt', sa.String(length=64), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('sent_at', UtcDateTime, nullable=False),
        sa.Column('settle_by', UtcDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ['listing_id'], ['listing.id'],
            name=op.f('fk_push_in_flight_listing_id_listing'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_push_in_flight')),
    )
    with op.batch_alter_table('push_in_flight', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_push_in_flight_attempt'), ['attempt'], unique=False)
        batch_op.create_index(
            batch_op.f('ix_push_in_flight_listing_id'), ['listing_id'], unique=False
        )
        batch_op.create_index(
            batch_op.f('ix_push_in_flight_settle_by'), ['settle_by'], unique=False
        )


def downgrade() -> None:
    op.drop_table('push_in_flight')
