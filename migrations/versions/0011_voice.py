"""voice calls: subscriber.voice/voice_only, call levels, call outcomes, spoken wording, paper forms

Revision ID: 0011_voice
Revises: 0010_sms_routes
Create Date: 2026-12-04 19:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011_voice'
down_revision = '0010_sms_routes'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('subscriber', schema=None) as batch_op:
        batch_op.add_column(sa.Column('voice', sa.Boolean(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('voice_only', sa.Boolean(), nullable=False, server_default='0'))
    with op.batch_alter_table('subscriber_category', schema=None) as batch_op:
        batch_op.add_column(sa.Column('call_level', sa.SmallInteger(), nullable=True))
    with op.batch_alter_table('consent_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reference', sa.String(length=64), nullable=True))
    with op.batch_alter_table('sms_outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=8), nullable=False, server_default='sms'))
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('outcome', sa.String(length=12), nullable=True))
    with op.batch_alter_table('alert', schema=None) as batch_op:
        batch_op.add_column(sa.Column('spoken', sa.JSON(), nullable=True))
    # alert_version is immutable on PostgreSQL (a trigger refuses UPDATE); adding a nullable
    # column rewrites no row.
    op.add_column('alert_version', sa.Column('spoken', sa.JSON(), nullable=True))


def downgrade():
    op.drop_column('alert_version', 'spoken')
    for table, column in (('alert', 'spoken'), ('delivery', 'outcome'), ('sms_outbox', 'kind'),
                          ('consent_event', 'reference'), ('subscriber_category', 'call_level'),
                          ('subscriber', 'voice_only'), ('subscriber', 'voice')):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column(column)
