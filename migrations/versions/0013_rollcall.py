"""roll-call: roll_call, roll_call_member, roll_call_answer

Revision ID: 0013_rollcall
Revises: 0012_groups
Create Date: 2026-12-07 15:00:00

"""
from alembic import op
import sqlalchemy as sa

import db  # our column types, e.g. db.UTCDateTime


# revision identifiers, used by Alembic.
revision = '0013_rollcall'
down_revision = '0012_groups'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'roll_call',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('question', sa.String(length=300), nullable=False),
        sa.Column('questions', sa.JSON(), nullable=False),
        sa.Column('areas', sa.JSON(none_as_null=True), nullable=True),
        sa.Column('groups', sa.JSON(none_as_null=True), nullable=True),
        sa.Column('started_by', sa.Integer(), nullable=True),
        sa.Column('started_at', db.UTCDateTime(), nullable=False),
        sa.Column('waves', sa.Integer(), nullable=False),
        sa.Column('closed_at', db.UTCDateTime(), nullable=True),
        sa.Column('closed_by', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['started_by'], ['staff_user.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['closed_by'], ['staff_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'roll_call_member',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('roll_call_id', sa.Integer(), nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('area', sa.String(length=32), nullable=True),
        sa.Column('answer', sa.String(length=8), nullable=True),
        sa.Column('answer_id', sa.Integer(), nullable=True),
        sa.Column('answered_at', db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['roll_call_id'], ['roll_call.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('roll_call_id', 'subscriber_id', name='uq_roll_call_member'),
    )
    op.create_index('ix_roll_call_member_subscriber', 'roll_call_member', ['subscriber_id'], unique=False)
    op.create_table(
        'roll_call_answer',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('roll_call_id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('answer', sa.String(length=8), nullable=False),
        sa.Column('text', sa.String(length=500), nullable=True),
        sa.Column('via', sa.String(length=8), nullable=False),
        sa.Column('recorded_by', sa.Integer(), nullable=True),
        sa.Column('how', sa.String(length=8), nullable=True),
        sa.Column('received_at', db.UTCDateTime(), nullable=False),
        sa.Column('late', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['roll_call_id'], ['roll_call.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['member_id'], ['roll_call_member.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['recorded_by'], ['staff_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_roll_call_answer_member', 'roll_call_answer', ['member_id'], unique=False)
    op.create_index(op.f('ix_roll_call_answer_roll_call_id'), 'roll_call_answer', ['roll_call_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_roll_call_answer_roll_call_id'), table_name='roll_call_answer')
    op.drop_index('ix_roll_call_answer_member', table_name='roll_call_answer')
    op.drop_table('roll_call_answer')
    op.drop_index('ix_roll_call_member_subscriber', table_name='roll_call_member')
    op.drop_table('roll_call_member')
    op.drop_table('roll_call')
