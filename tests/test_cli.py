"""Command-line tools for staff: accounts, GDPR export and erasure."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from db import db
from staff.models import StaffUser
from subscribers.models import ConsentEvent, InboundSms, Subscriber
from subscribers.service import Origin, keyword_signup


def test_it_creates_a_staff_account_with_a_password_from_stdin(runner):
    result = runner.invoke(args=["users", "create", "Wojt@Kozy.pl", "--role", "approver", "--password-stdin"],
                           input="a-long-enough-password\n")
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(StaffUser))
    assert user.email == "wojt@kozy.pl" and user.role == "approver"
    assert user.password_hash.startswith("scrypt:") and user.check_password("a-long-enough-password")


def test_it_refuses_a_short_password_a_bad_role_and_a_duplicate(runner):
    args = ["users", "create", "a@kozy.pl", "--role", "editor", "--password-stdin"]
    assert "at least 12" in runner.invoke(args=args, input="short\n").output
    assert "Invalid value for '--role'" in runner.invoke(
        args=["users", "create", "a@kozy.pl", "--role", "boss", "--password-stdin"], input="x" * 12).output
    assert runner.invoke(args=args, input="x" * 12 + "\n").exit_code == 0
    assert "already exists" in runner.invoke(args=args, input="x" * 12 + "\n").output
    assert "is not an e-mail" in runner.invoke(
        args=["users", "create", "nobody", "--role", "editor", "--password-stdin"], input="x" * 12).output


def test_it_exports_everything_about_a_resident_as_json(runner):
    keyword_signup("+48501234567", None, Origin("sms"))
    db.session.add(InboundSms(provider_ref="SM1", from_phone="+48501234567", body="START"))
    db.session.commit()
    result = runner.invoke(args=["subscribers", "export", "501 234 567"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["subscriber"]["phone"] == "+48501234567"
    assert data["subscriber"]["status"] == "active"
    assert [e["action"] for e in data["consent_history"]] == ["subscribe"]
    assert data["messages_from_you"][0]["text"] == "START"


def test_it_erases_a_resident_and_their_consent_history(runner):
    keyword_signup("+48501234567", None, Origin("sms"))
    keyword_signup("+48601234567", None, Origin("sms"))
    result = runner.invoke(args=["subscribers", "erase", "+48501234567", "--yes"])
    assert result.exit_code == 0 and "Erased +48 501 *** 567; at the SMS provider: 0 deleted, 0 still in flight, 0 failed." in result.output
    assert db.session.scalars(select(Subscriber.phone)).all() == ["+48601234567"]
    assert db.session.scalar(select(func.count()).select_from(ConsentEvent)) == 1


def test_erase_asks_before_it_deletes(runner):
    keyword_signup("+48501234567", None, Origin("sms"))
    result = runner.invoke(args=["subscribers", "erase", "+48501234567"], input="n\n")
    assert result.exit_code != 0
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 1


def test_an_unknown_number_is_reported(runner):
    result = runner.invoke(args=["subscribers", "export", "+48501234567"])
    assert result.exit_code != 0 and "No subscriber with the number +48501234567" in result.output


def test_staff_can_revoke_a_residents_manage_links(app, runner):
    from subscribers.links import make_manage_token, subscriber_for_token

    subscriber, _ = keyword_signup("+48501234567", None, Origin("sms"))
    token = make_manage_token(subscriber)
    result = runner.invoke(args=["subscribers", "revoke-links", "501234567"])
    assert result.exit_code == 0 and "Revoked the manage links of +48 501 *** 567." in result.output
    assert subscriber_for_token(token) is None
    assert subscriber_for_token(make_manage_token(subscriber)) is not None
