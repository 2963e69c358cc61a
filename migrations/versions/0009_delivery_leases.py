"""delivery claims are leases: delivery.lease_renewed_at

Revision ID: 0009_delivery_leases
Revises: 0002_approval_versions
Create Date: 2026-12-02 05:50:00

"""
from alembic import op
import sqlalchemy as sa

import db  # our column types, e.g. db.UTCDateTime


# revision identifiers, used by Alembic.
revision = '0009_delivery_leases'
down_revision = '0008_leader_lease'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_renewed_at', db.UTCDateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_column('lease_renewed_at')
