"""dispatcher heartbeats and time indexes, for the figures operators watch (metrics.py)

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
    # The figures read recent hand-offs and events by time. Partial: a delivery enters the
    # index when it is sent, so the fan-out writes nothing more.
    op.create_index('ix_delivery_sent_at', 'delivery', ['sent_at'], unique=False,
                    postgresql_where=sa.text('sent_at IS NOT NULL'), sqlite_where=sa.text('sent_at IS NOT NULL'))
    op.create_index(op.f('ix_delivery_event_received_at'), 'delivery_event', ['received_at'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_delivery_event_received_at'), table_name='delivery_event')
    op.drop_index('ix_delivery_sent_at', table_name='delivery')
    op.drop_table('dispatcher_heartbeat')
