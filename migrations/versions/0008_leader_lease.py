"""leader lease: the scheduler's leadership as a lease that expires (leader_lease.py)

Revision ID: 0008_leader_lease
Revises: 0002_approval_versions
Create Date: 2026-12-02 05:55:00

"""
from alembic import op
import sqlalchemy as sa

import db  # our column types, e.g. db.UTCDateTime


# revision identifiers, used by Alembic.
revision = '0008_leader_lease'
down_revision = '0002_approval_versions'
branch_labels = None
depends_on = None


def upgrade():
    # One row per role; replaces the PostgreSQL advisory lock / SQLite flock of old.
    op.create_table('leader_lease',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('expires_at', db.UTCDateTime(), nullable=False),
    sa.Column('acquired_at', db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_leader_lease'))
    )


def downgrade():
    op.drop_table('leader_lease')
