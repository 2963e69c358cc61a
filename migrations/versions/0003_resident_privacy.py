"""residents' privacy: ids never reused, links bound to a secret, codes by number HMAC,
token buckets, the residents' SMS outbox

Revision ID: 0003_resident_privacy
Revises: 23606f0ae518
Create Date: 2026-12-02 04:40:00

Manage links issued before this migration stop working (they were only a signature over
``id-version``, which an erased resident's successor on SQLite could inherit); a resident
gets a new one through "lost link". Codes not yet used are voided (their hash was keyed by
the subscriber id; they live 10 minutes anyway).
"""
import secrets

from alembic import op
import sqlalchemy as sa

import db  # our column types, e.g. db.UTCDateTime


# revision identifiers, used by Alembic.
revision = '0003_resident_privacy'
down_revision = '0006_webhook_refusals'
branch_labels = None
depends_on = None


def _sqlite() -> bool:
    return op.get_bind().dialect.name == 'sqlite'


def _foreign_keys(on: bool) -> None:
    """SQLite: rebuilding `subscriber` drops the old table, and with foreign keys on, that drop
    would first delete every row that points at it (ON DELETE CASCADE: all preferences,
    codes, consent, deliveries). The pragma only works outside a transaction, so commit first."""
    if not _sqlite():
        return
    bind = op.get_bind()
    if bind.connection.dbapi_connection.in_transaction:
        bind.exec_driver_sql('COMMIT')
    bind.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    state = bind.exec_driver_sql('PRAGMA foreign_keys').scalar()
    if bool(state) != on:
        raise RuntimeError('could not switch SQLite foreign keys; refusing to rebuild subscriber')


def upgrade():
    # The old fixed-window counters were keyed by the full number; nothing reads them now.
    op.execute("DELETE FROM rate_counter")
    _foreign_keys(False)
    # recreate='always' on SQLite: AUTOINCREMENT exists only in CREATE TABLE.
    with op.batch_alter_table('subscriber', schema=None, recreate='always' if _sqlite() else 'auto',
                              table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.add_column(sa.Column('link_secret', sa.String(length=32), nullable=True))
    _foreign_keys(True)
    subscriber = sa.table('subscriber', sa.column('id', sa.Integer), sa.column('link_secret', sa.String))
    bind = op.get_bind()
    ids = bind.execute(sa.select(subscriber.c.id)).scalars().all()
    for sid in ids:
        bind.execute(subscriber.update().where(subscriber.c.id == sid).values(link_secret=secrets.token_hex(16)))

    with op.batch_alter_table('verification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone_key', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('delivery_error', sa.String(length=24), nullable=True))
        batch_op.alter_column('subscriber_id', existing_type=sa.Integer(), nullable=True)
    verification = sa.table('verification', sa.column('consumed_at', db.UTCDateTime()),
                            sa.column('voided_at', db.UTCDateTime()))
    bind.execute(verification.update()
                 .where(verification.c.consumed_at.is_(None), verification.c.voided_at.is_(None))
                 .values(voided_at=db.utcnow()))
    with op.batch_alter_table('verification', schema=None) as batch_op:
        batch_op.alter_column('phone_key', existing_type=sa.String(length=64), server_default=None)
        batch_op.create_index('ix_verification_phone_key', ['phone_key', 'created_at'], unique=False)

    op.create_table('rate_bucket',
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('tat', sa.Float(precision=53), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_rate_bucket'))
    )
    op.create_table('sms_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=True),
    sa.Column('verification_id', sa.Integer(), nullable=True),
    sa.Column('to_phone', sa.String(length=16), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('reference', sa.String(length=64), nullable=False),
    sa.Column('created_at', db.UTCDateTime(), nullable=False),
    sa.Column('not_after', db.UTCDateTime(), nullable=False),
    sa.Column('next_attempt_at', db.UTCDateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claimed_at', db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], name=op.f('fk_sms_outbox_subscriber_id_subscriber'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['verification_id'], ['verification.id'], name=op.f('fk_sms_outbox_verification_id_verification'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_outbox'))
    )
    with op.batch_alter_table('sms_outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sms_outbox_next_attempt_at'), ['next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_sms_outbox_subscriber_id'), ['subscriber_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sms_outbox_verification_id'), ['verification_id'], unique=False)


def downgrade():
    with op.batch_alter_table('sms_outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sms_outbox_verification_id'))
        batch_op.drop_index(batch_op.f('ix_sms_outbox_subscriber_id'))
        batch_op.drop_index(batch_op.f('ix_sms_outbox_next_attempt_at'))
    op.drop_table('sms_outbox')
    op.drop_table('rate_bucket')
    # Decoy codes have no resident; the older schema cannot hold them.
    op.execute("DELETE FROM verification WHERE subscriber_id IS NULL")
    with op.batch_alter_table('verification', schema=None) as batch_op:
        batch_op.drop_index('ix_verification_phone_key')
        batch_op.alter_column('subscriber_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('delivery_error')
        batch_op.drop_column('phone_key')
    _foreign_keys(False)
    with op.batch_alter_table('subscriber', schema=None, recreate='always' if _sqlite() else 'auto') as batch_op:
        batch_op.drop_column('link_secret')
    _foreign_keys(True)
