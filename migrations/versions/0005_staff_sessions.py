"""staff sessions, used TOTP steps, sign-in throttle; no hard lockout

Sessions become rows (the cookie holds a token whose hash is stored), a used TOTP step is a
primary key (one sign-in per code), and sign-in attempts are throttled per (account,
address) instead of locking the account: failed_logins, locked_until and totp_last_step go.

Revision ID: 0005_staff_sessions
Revises: 23606f0ae518
Create Date: 2026-12-02 04:17:04.313628

"""
from alembic import op
import sqlalchemy as sa

import db  # our column types, e.g. db.UTCDateTime


# revision identifiers, used by Alembic.
revision = '0005_staff_sessions'
down_revision = '0003_resident_privacy'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('staff_login_throttle',
    sa.Column('account_key', sa.String(length=64), nullable=False),
    sa.Column('ip_bucket', sa.String(length=64), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('refused', sa.Integer(), nullable=False),
    sa.Column('last_refused', sa.Boolean(), nullable=False),
    sa.Column('delay_seconds', sa.Float(), nullable=False),
    sa.Column('next_allowed_at', sa.Float(), nullable=False),
    sa.Column('last_attempt_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('account_key', 'ip_bucket', name=op.f('pk_staff_login_throttle'))
    )
    op.create_table('staff_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('created_at', db.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', db.UTCDateTime(), nullable=False),
    sa.Column('ended_at', db.UTCDateTime(), nullable=True),
    sa.Column('ended_reason', sa.String(length=32), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=400), nullable=True),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_user.id'], name=op.f('fk_staff_session_staff_id_staff_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_session')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_staff_session_token_hash'))
    )
    with op.batch_alter_table('staff_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_session_staff_id'), ['staff_id'], unique=False)

    op.create_table('staff_totp_step',
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('used_at', db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_user.id'], name=op.f('fk_staff_totp_step_staff_id_staff_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('staff_id', 'step', name=op.f('pk_staff_totp_step'))
    )
    with op.batch_alter_table('staff_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('must_change_password', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.drop_column('failed_logins')
        batch_op.drop_column('locked_until')
        batch_op.drop_column('totp_last_step')



def downgrade():
    with op.batch_alter_table('staff_user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_last_step', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('locked_until', db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('failed_logins', sa.Integer(), server_default='0', nullable=False))
        batch_op.drop_column('must_change_password')

    op.drop_table('staff_totp_step')
    with op.batch_alter_table('staff_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_session_staff_id'))

    op.drop_table('staff_session')
    op.drop_table('staff_login_throttle')
