"""groups beyond villages: subscriber_group, alert.groups, alert_version.groups

Revision ID: 0012_groups
Revises: 0011_voice
Create Date: 2026-12-04 19:40:00

"""
from alembic import op
import sqlalchemy as sa

import db  # our column types, e.g. db.UTCDateTime


# revision identifiers, used by Alembic.
revision = '0012_groups'
down_revision = '0011_voice'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'subscriber_group',
        sa.Column('group', sa.String(length=16), nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('source', sa.String(length=8), nullable=False),
        sa.Column('added_by', sa.Integer(), nullable=True),
        sa.Column('created_at', db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['added_by'], ['staff_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('group', 'subscriber_id'),
    )
    op.create_index(op.f('ix_subscriber_group_subscriber_id'), 'subscriber_group', ['subscriber_id'], unique=False)
    # Plain ADD COLUMN: no table is rebuilt (see 0011).
    op.add_column('alert', sa.Column('groups', sa.JSON(none_as_null=True), nullable=True))
    op.add_column('alert_version', sa.Column('groups', sa.JSON(none_as_null=True), nullable=True))


def downgrade():
    # SQLite 3.35+ drops a column in place (no rebuild, nothing cascades).
    op.drop_column('alert_version', 'groups')
    op.drop_column('alert', 'groups')
    op.drop_index(op.f('ix_subscriber_group_subscriber_id'), table_name='subscriber_group')
    op.drop_table('subscriber_group')
