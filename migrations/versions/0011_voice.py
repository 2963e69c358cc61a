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


def _foreign_keys(on: bool) -> None:
    """SQLite: rebuilding `subscriber` (a batch drop of a column) drops the old table, and with
    foreign keys on that drop first deletes every row pointing at it (ON DELETE CASCADE). The
    pragma only works outside a transaction, so commit first (as in 0003)."""
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        return
    if bind.connection.dbapi_connection.in_transaction:
        bind.exec_driver_sql('COMMIT')
    bind.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    if bool(bind.exec_driver_sql('PRAGMA foreign_keys').scalar()) != on:
        raise RuntimeError('could not switch SQLite foreign keys; refusing to rebuild tables')


def upgrade():
    # Plain ADD COLUMN on both databases: no table is rebuilt, so nothing cascades.
    op.add_column('subscriber', sa.Column('voice', sa.Boolean(), nullable=False, server_default='0'))
    op.add_column('subscriber', sa.Column('voice_only', sa.Boolean(), nullable=False, server_default='0'))
    op.add_column('subscriber_category', sa.Column('call_level', sa.SmallInteger(), nullable=True))
    op.add_column('consent_event', sa.Column('reference', sa.String(length=64), nullable=True))
    op.add_column('sms_outbox', sa.Column('kind', sa.String(length=8), nullable=False, server_default='sms'))
    op.add_column('delivery', sa.Column('outcome', sa.String(length=12), nullable=True))
    op.add_column('alert', sa.Column('spoken', sa.JSON(), nullable=True))
    # alert_version is immutable on PostgreSQL (a trigger refuses UPDATE); adding a nullable
    # column rewrites no row.
    op.add_column('alert_version', sa.Column('spoken', sa.JSON(), nullable=True))


def downgrade():
    _foreign_keys(False)
    op.drop_column('alert_version', 'spoken')
    for table, column in (('alert', 'spoken'), ('delivery', 'outcome'), ('sms_outbox', 'kind'),
                          ('consent_event', 'reference'), ('subscriber_category', 'call_level'),
                          ('subscriber', 'voice_only'), ('subscriber', 'voice')):
        # subscriber keeps AUTOINCREMENT when SQLite rebuilds it (it exists only in CREATE TABLE).
        kwargs = {'sqlite_autoincrement': True} if table == 'subscriber' else {}
        with op.batch_alter_table(table, schema=None, table_kwargs=kwargs) as batch_op:
            batch_op.drop_column(column)
    _foreign_keys(True)
