"""webhook refusals: refused Twilio webhooks counted per endpoint, reason and minute

Revision ID: 0006_webhook_refusals
Revises: 23606f0ae518
Create Date: 2026-12-02 04:18:25.216842

"""
from alembic import op
import sqlalchemy as sa

import db  # our column types, e.g. db.UTCDateTime


# revision identifiers, used by Alembic.
revision = '0006_webhook_refusals'
down_revision = '23606f0ae518'
branch_labels = None
depends_on = None


def upgrade():
    # No body, number or IP: only when, where and why (see webhook_checks.py).
    op.create_table('webhook_refusal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('endpoint', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('minute', db.UTCDateTime(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('last_at', db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_refusal')),
    sa.UniqueConstraint('endpoint', 'reason', 'minute', name=op.f('uq_webhook_refusal_endpoint_reason_minute'))
    )
    with op.batch_alter_table('webhook_refusal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_refusal_minute'), ['minute'], unique=False)


def downgrade():
    with op.batch_alter_table('webhook_refusal', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_refusal_minute'))

    op.drop_table('webhook_refusal')