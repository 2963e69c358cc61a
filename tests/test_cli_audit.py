"""Every command-line action that changes something is in the audit log as cli:<OS user>,
and the command line is no way around the two-person rule: a whole-gmina or emergency send
needs --break-glass with a reason, and is flagged like the web's break glass."""

from __future__ import annotations

import getpass

from sqlalchemy import select

from alerts.models import Alert, Delivery
from db import db
from population import seed
from staff import audit
from staff.audit import AuditEvent
from subscribers.service import Origin, keyword_signup

ME = f"cli:{getpass.getuser()}"
REASON = "Serwer WWW nie działa, powódź"


def events() -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def send(runner, *extra: str):  # noqa: ANN001, ANN201
    return runner.invoke(args=["alerts", "send", "--category", "weather", "--level", "2", "--title", "Wichura",
                               "--text", "Porywy do 90 km/h.", "--expires-in", "6h", *extra])


def test_it_refuses_a_whole_gmina_send_from_the_command_line_without_break_glass(runner):
    seed(2, categories={"weather": 1}, areas=["KOZY"])
    result = send(runner)
    assert result.exit_code != 0 and "break_glass_needed" in result.output and "--break-glass" in result.output
    result = send(runner, "--break-glass", "--reason", "pilne")  # a reason too short to say anything
    assert result.exit_code != 0 and "break_glass_needed" in result.output
    assert db.session.scalar(select(Alert)) is None and db.session.scalar(select(Delivery)) is None
    assert [(e.action, e.actor, e.detail["reason"]) for e in events()] == [
        ("cli_send_refused", ME, "break_glass_needed")] * 2


def test_a_break_glass_send_from_the_command_line_is_flagged_and_audited(runner):
    seed(2, categories={"weather": 1}, areas=["KOZY"])
    result = send(runner, "--break-glass", "--reason", REASON)
    assert result.exit_code == 0, result.output
    alert = db.session.scalar(select(Alert))
    assert alert.break_glass and alert.meta["break_glass_reason"] == REASON
    logged = events()
    assert [(e.action, e.actor, e.target, e.flagged) for e in logged] == [
        ("break_glass", ME, f"alert:{alert.id}", True), ("sent", ME, f"alert:{alert.id}", False)]
    assert logged[0].detail["reason"] == REASON and logged[1].detail["queued"] == {"sms": 2}
    assert logged[0].ip == "cli" and logged[0].staff_id is None


def test_an_emergency_to_one_village_from_the_command_line_needs_break_glass_too(make_app):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    runner = app.test_cli_runner()
    args = ["alerts", "send", "--category", "emergency", "--areas", "CZA", "--title", "Ewakuacja",
            "--text", "Opuść dom."]
    assert "break_glass_needed" in runner.invoke(args=args).output
    assert runner.invoke(args=[*args, "--break-glass", "--reason", REASON]).exit_code == 0
    # An ordinary message to one village: no second person needed, still audited.
    result = runner.invoke(args=["alerts", "send", "--category", "official", "--areas", "CZA", "--title",
                                 "Zebranie", "--text", "W piątek o 18:00."])
    assert result.exit_code == 0, result.output
    assert [(e.action, e.actor) for e in events()] == [
        ("cli_send_refused", ME), ("break_glass", ME), ("sent", ME), ("sent", ME)]


def test_updates_and_cancellations_from_the_command_line_are_judged_by_their_chain(make_app):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    runner = app.test_cli_runner()
    seed(2, categories={"weather": 1}, areas=["CZA"])
    assert send(runner, "--break-glass", "--reason", REASON).exit_code == 0  # the whole gmina
    result = runner.invoke(args=["alerts", "update", "1", "--text", "Porywy do 110 km/h."])
    assert result.exit_code != 0 and "break_glass_needed" in result.output
    result = runner.invoke(args=["alerts", "update", "1", "--text", "Porywy do 110 km/h.",
                                 "--break-glass", "--reason", REASON])
    assert result.exit_code == 0, result.output
    update_id = int(result.output.split()[1])  # "Alert 2 (update of 1) published: ..."
    result = runner.invoke(args=["alerts", "cancel", str(update_id), "--break-glass", "--reason", REASON])
    assert result.exit_code == 0, result.output
    cancel_id = int(result.output.split()[1])
    sent = [e for e in events() if e.action == "sent"]
    assert [(e.target, e.detail["kind"], e.detail["break_glass"]) for e in sent] == [
        ("alert:1", "alert", True), (f"alert:{update_id}", "update", True), (f"alert:{cancel_id}", "cancel", True)]
    assert all(e.actor == ME for e in events())


def test_account_and_resident_commands_write_audit_rows(runner):
    result = runner.invoke(args=["users", "create", "wojt@kozy.pl", "--role", "approver", "--password-stdin"],
                           input="a-long-enough-password\n")
    assert result.exit_code == 0, result.output
    subscriber, _ = keyword_signup("+48501234567", None, Origin("sms"))
    target = f"subscriber:{subscriber.id}"
    assert runner.invoke(args=["subscribers", "export", "501234567"]).exit_code == 0
    assert runner.invoke(args=["subscribers", "revoke-links", "501234567"]).exit_code == 0
    assert runner.invoke(args=["subscribers", "erase", "501234567", "--yes"]).exit_code == 0
    logged = events()
    assert [(e.action, e.actor, e.target) for e in logged] == [
        ("account_created", ME, logged[0].target), ("subscriber_exported", ME, target),
        ("subscriber_links_revoked", ME, target), ("subscriber_erased", ME, target),
        ("subscriber_erased_at_provider", ME, target)]
    assert runner.invoke(args=["subscribers", "purge-unconfirmed"]).exit_code == 0
    assert events()[-1].action == "unconfirmed_purged" and events()[-1].actor == ME
    assert logged[0].detail["role"] == "approver"
    # Residents' audit rows name an id, never the number: nothing to erase from the log.
    assert not any("501234567" in str(e.detail) for e in logged)
    assert audit.verify().ok


def test_it_does_not_audit_a_command_that_only_reads(runner):
    assert runner.invoke(args=["alerts", "show", "1"]).exit_code != 0
    assert runner.invoke(args=["feeds", "status"]).exit_code == 0
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    assert events() == []
