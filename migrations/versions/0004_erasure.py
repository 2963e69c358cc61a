"""erasure: provider deletions, inbound SID hashes, hint replies

provider_deletion: SIDs an erasure still has to delete at the SMS provider.
inbound_seen: SHA-256 of every processed MessageSid (kept after erasure; replay guard),
filled here from the texts already in inbound_sms.
hint_reply: when a number (by HMAC) last got the hint for a text that was no keyword.

Revision ID: 0004_erasure
Revises: 23606f0ae518
Create Date: 2026-12-02 04:17:38.052673

"""
import hashlib
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa

import db  # our column types, e.g. db.UTCDateTime


# revision identifiers, used by Alembic.
revision = '0004_erasure'
down_revision = '0005_staff_sessions'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('hint_reply',
    sa.Column('number_key', sa.String(length=64), nullable=False),
    sa.Column('replied_at', db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('number_key', name=op.f('pk_hint_reply'))
    )
    op.create_table('inbound_seen',
    sa.Column('sid_hash', sa.String(length=64), nullable=False),
    sa.Column('seen_at', db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('sid_hash', name=op.f('pk_inbound_seen'))
    )
    op.create_table('provider_deletion',
    sa.Column('provider_ref', sa.String(length=64), nullable=False),
    sa.Column('created_at', db.UTCDateTime(), nullable=False),
    sa.Column('next_attempt_at', db.UTCDateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=300), nullable=True),
    sa.PrimaryKeyConstraint('provider_ref', name=op.f('pk_provider_deletion'))
    )
    with op.batch_alter_table('provider_deletion', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provider_deletion_next_attempt_at'), ['next_attempt_at'], unique=False)

    # Texts handled before this revision are handled too: their SIDs must not run again.
    bind = op.get_bind()
    refs = [r for (r,) in bind.execute(sa.text("SELECT DISTINCT provider_ref FROM inbound_sms"))]
    if refs:
        seen = sa.table('inbound_seen', sa.column('sid_hash', sa.String), sa.column('seen_at', db.UTCDateTime()))
        now = datetime.now(timezone.utc)
        op.bulk_insert(seen, [{'sid_hash': hashlib.sha256(r.encode()).hexdigest(), 'seen_at': now} for r in refs])



def downgrade():
    with op.batch_alter_table('provider_deletion', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_provider_deletion_next_attempt_at'))

    op.drop_table('provider_deletion')
    op.drop_table('inbound_seen')
    op.drop_table('hint_reply')
