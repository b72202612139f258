"""channel_state: calls to a channel held after it refused our credentials

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('channel_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column('auth_failures', sa.Integer(), server_default='0', nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('channel_state', schema=None) as batch_op:
        batch_op.drop_column('auth_failures')
        batch_op.drop_column('held_until')
