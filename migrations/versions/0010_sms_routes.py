"""several SMS providers: delivery.provider, delivery_event.provider, sms_route, sms_route_shift

Revision ID: 0010_sms_routes
Revises: 0009_delivery_leases
Create Date: 2026-12-02 13:30:00

"""
from alembic import op
import sqlalchemy as sa

import db  # our column types, e.g. db.UTCDateTime


# revision identifiers, used by Alembic.
revision = '0010_sms_routes'
down_revision = '0009_delivery_leases'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provider', sa.String(length=16), nullable=True))
    with op.batch_alter_table('delivery_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provider', sa.String(length=16), nullable=True))
    op.create_table(
        'sms_route',
        sa.Column('provider', sa.String(length=16), nullable=False),
        sa.Column('weight', sa.SmallInteger(), nullable=False),
        sa.Column('resting', sa.SmallInteger(), nullable=False),
        sa.Column('pinned', sa.Boolean(), nullable=False),
        sa.Column('state', sa.String(length=12), nullable=False),
        sa.Column('changed_at', db.UTCDateTime(), nullable=False),
        sa.Column('cooldown_until', db.UTCDateTime(), nullable=True),
        sa.Column('reason', sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint('provider'),
    )
    op.create_table(
        'sms_route_shift',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', db.UTCDateTime(), nullable=False),
        sa.Column('provider', sa.String(length=16), nullable=False),
        sa.Column('old_weight', sa.SmallInteger(), nullable=False),
        sa.Column('new_weight', sa.SmallInteger(), nullable=False),
        sa.Column('actor', sa.String(length=80), nullable=False),
        sa.Column('reason', sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('sms_route_shift', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sms_route_shift_at'), ['at'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        for statement in db.refuse_row_changes_sql('sms_route_shift', 'sms_route_shift_append_only', 'append-only'):
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS sms_route_shift_append_only ON sms_route_shift')
        op.execute('DROP FUNCTION IF EXISTS sms_route_shift_append_only()')
    with op.batch_alter_table('sms_route_shift', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sms_route_shift_at'))
    op.drop_table('sms_route_shift')
    op.drop_table('sms_route')
    with op.batch_alter_table('delivery_event', schema=None) as batch_op:
        batch_op.drop_column('provider')
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_column('provider')
