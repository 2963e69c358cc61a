"""dispatcher heartbeats, for the figures operators watch (metrics.py)

Revision ID: 0014_dispatcher_heartbeat
Revises: 0013_rollcall
Create Date: 2026-12-07 15:30:00

"""
from alembic import op
import sqlalchemy as sa

import db  # our column types, e.g. db.UTCDateTime


# revision identifiers, used by Alembic.
revision = '0014_dispatcher_heartbeat'
down_revision = '0013_rollcall'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'dispatcher_heartbeat',
        sa.Column('worker', sa.String(length=128), nullable=False),
        sa.Column('started_at', db.UTCDateTime(), nullable=False),
        sa.Column('seen_at', db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('worker'),
    )


def downgrade():
    op.drop_table('dispatcher_heartbeat')
