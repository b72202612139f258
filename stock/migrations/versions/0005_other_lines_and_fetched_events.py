"""order lines that are not stock; inbox events completed by a fetch before applying

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 22:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('channel_order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('other_lines', sa.JSON(), nullable=True))
    with op.batch_alter_table('inbox_event', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('awaits_fetch', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column('fetched_body', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('inbox_event', schema=None) as batch_op:
        batch_op.drop_column('fetched_body')
        batch_op.drop_column('awaits_fetch')
    with op.batch_alter_table('channel_order', schema=None) as batch_op:
        batch_op.drop_column('other_lines')
