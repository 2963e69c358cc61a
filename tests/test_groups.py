"""Groups beyond villages (issue 14): residents join open groups themselves, staff add them
to closed ones under the group's legal basis, and a message to groups reaches exactly their
members, in one set-based statement, on both databases."""

from __future__ import annotations

from sqlalchemy import func, select

from alerts import publish as lifecycle
from alerts.models import Alert, Delivery
from db import db
from population import seed
from staff.audit import AuditEvent
from subscribers import groups, service
from subscribers.models import ConsentEvent, Subscriber, SubscriberGroup
from tests.parallel import at_once, serve  # noqa: F401 - the fixture
from tests.test_admin_messages import PASSWORD, compose, make_staff, page, signed_in
from tests.test_delivery import alert
from tests.test_public_pages import PHONE, message, subscribe_form, subscriber
from tests.test_public_pages import page as parsed

STAFF = service.Origin("staff")


def join(ids: list[int], code: str, staff) -> None:  # noqa: ANN001
    for sid in ids:
        assert groups.add(db.session.get(Subscriber, sid), code, staff, STAFF)


def recipients(a: Alert) -> set[int]:
    db.session.expire_all()
    return set(db.session.scalars(select(Delivery.subscriber_id).where(Delivery.alert_id == a.id)))


def test_a_message_to_groups_reaches_exactly_their_members_in_the_chosen_villages(make_app, twilio):
    make_app(SYRENA_MUNICIPALITY="porabka")
    boss = make_staff("approver")
    osp_cza = seed(4, categories={"weather": 1}, areas=["CZA"], start=0)  # chose no official messages
    osp_buj = seed(3, categories={"weather": 1}, areas=["BUJ"], start=100)
    farmers = seed(5, categories={"official": 1}, areas=["CZA"], start=200)
    others = seed(6, categories={"official": 1}, areas=["CZA"], start=300)
    left = seed(2, categories={"official": 1}, areas=["CZA"], start=400, status="opted_out")
    join(osp_cza + osp_buj + left[:1], "osp", boss)
    for sid in farmers:
        resident = db.session.get(Subscriber, sid)
        service.update_preferences(resident, service.Preferences(categories={"official": 1}, areas=("CZA",),
                                                                 language="pl", groups=("rolnicy",)), STAFF)

    def sent(**kw) -> Alert:  # noqa: ANN003
        a = alert(category="official", level=None, **kw)
        lifecycle.publish(a)
        return a

    assert recipients(sent(groups=["osp"])) == set(osp_cza + osp_buj)  # whatever their categories
    assert recipients(sent(groups=["osp"], areas=["CZA"])) == set(osp_cza)
    assert recipients(sent(groups=["osp", "rolnicy"])) == set(osp_cza + osp_buj + farmers)
    assert recipients(sent()) == set(farmers + others)  # to everyone: by category, as before
    # An unknown group is refused before anything is stored.
    try:
        alert(category="official", level=None, groups=["nobody"])
    except lifecycle.AlertError as exc:
        assert exc.code == "group_unknown"
    else:
        raise AssertionError("an unknown group was accepted")


def test_a_message_to_a_group_is_not_on_the_public_pages(app, client, twilio):
    boss = make_staff("approver")
    [sid] = seed(1, categories={"weather": 1}, areas=["KOZY"])
    join([sid], "osp", boss)
    internal = alert(category="official", level=None, groups=["osp"], title="Zbiórka OSP w remizie",
                     text="Zbiórka o 18:00.")
    lifecycle.publish(internal)
    public = alert(category="official", level=None, title="Zebranie wiejskie", text="W czwartek o 18:00.")
    lifecycle.publish(public)
    for url in ("/", "/komunikaty", "/api/v1/alerts?active=1", "/feeds/alerts.atom"):
        body = client.get(url).get_data(as_text=True)
        assert "Zebranie wiejskie" in body and "Zbiórka OSP" not in body, url
    # The members' own SMS link still opens it.
    assert "Zbiórka OSP" in client.get(f"/alerts/{internal.id}").get_data(as_text=True)


def test_residents_join_open_groups_themselves_but_never_a_closed_one(client, twilio):
    from tests.conftest import last_code

    response = client.post("/subscribe", data=subscribe_form(groups=["rolnicy"]))
    assert response.status_code == 302
    client.post("/verify", data={"code": last_code(twilio, PHONE)})
    resident = subscriber()
    assert resident.group_codes() == ["rolnicy"]
    event = db.session.scalar(select(ConsentEvent).where(ConsentEvent.action == "verify"))
    assert "groups: rolnicy" in event.detail
    # A forged closed group is refused next to the field; nothing changes.
    from subscribers.links import make_manage_token

    token = make_manage_token(resident)
    response = client.post(f"/m/{token}", data={"categories": ["weather"], "language": "pl",
                                                "groups": ["rolnicy", "osp"]})
    assert response.status_code == 400
    assert parsed(response).errors["groups"] == message("group_closed")
    assert subscriber().group_codes() == ["rolnicy"]
    # Leaving an open group on the manage page.
    assert client.post(f"/m/{token}", data={"categories": ["weather"], "language": "pl"}).status_code == 302
    assert subscriber().group_codes() == []


def test_staff_add_to_a_closed_group_under_its_legal_basis_audited_and_in_the_ledger(app, twilio):
    [sid] = seed(1, categories={"weather": 1}, areas=["KOZY"])
    approver = signed_in(app, make_staff("approver"))
    shown = page(approver, f"/admin/subscribers/{sid}")
    assert "Podstawa prawna: art. 6 ust. 1 lit. e RODO" in shown
    response = approver.post(f"/admin/subscribers/{sid}/groups", data={"group": "osp"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Subscriber, sid).group_codes() == ["osp"]
    event = db.session.scalar(select(ConsentEvent).where(ConsentEvent.action == "group_added"))
    assert event.source == "staff" and "legal basis: art. 6 ust. 1 lit. e RODO" in event.detail
    assert db.session.scalar(select(AuditEvent.target).where(AuditEvent.action == "subscriber_group_added")) \
        == f"subscriber:{sid}"
    # Editors may look, not add; an open group is the resident's own choice.
    editor = signed_in(app, make_staff("editor"))
    assert editor.post(f"/admin/subscribers/{sid}/groups", data={"group": "radni"}).status_code == 403
    approver.post(f"/admin/subscribers/{sid}/groups", data={"group": "rolnicy"})
    db.session.expire_all()
    assert db.session.get(Subscriber, sid).group_codes() == ["osp"]
    # The resident changing their own choices keeps what staff added.
    resident = db.session.get(Subscriber, sid)
    service.update_preferences(resident, service.Preferences(categories={"weather": 1}, areas=("KOZY",),
                                                             language="pl"), service.Origin("web"))
    db.session.expire_all()
    assert db.session.get(Subscriber, sid).group_codes() == ["osp"]
    approver.post(f"/admin/subscribers/{sid}/groups", data={"group": "osp", "action": "remove"})
    db.session.expire_all()
    assert db.session.get(Subscriber, sid).group_codes() == []


def test_thirty_parallel_adds_make_one_membership_and_one_ledger_entry(serve, twilio):  # noqa: F811
    import requests

    base = serve()
    [sid] = seed(1, categories={"weather": 1}, areas=["KOZY"])
    boss = make_staff("approver")
    sessions = []
    for _ in range(30):
        s = requests.Session()
        s.trust_env = False
        assert s.post(f"{base}/admin/login", data={"email": boss.email, "password": PASSWORD},
                      allow_redirects=False).status_code in (302, 303)
        sessions.append(s)
    statuses = at_once(30, lambda i: sessions[i].post(f"{base}/admin/subscribers/{sid}/groups",
                                                      data={"group": "osp"}, allow_redirects=False).status_code)
    assert set(statuses) == {302}
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(SubscriberGroup)) == 1
    assert db.session.scalar(select(func.count()).select_from(ConsentEvent)
                             .where(ConsentEvent.action == "group_added")) == 1


def test_staff_write_to_groups_from_the_compose_page(app, twilio):
    editor = signed_in(app, make_staff("editor"))
    boss = make_staff("approver")
    members = seed(2, categories={"weather": 1}, areas=["KOZY"])
    seed(3, categories={"official": 1}, areas=["KOZY"], start=50)
    join(members, "soltysi", boss)
    draft = compose(editor, category="official", level="", audience="groups", groups=["soltysi"],
                    title_pl="Narada sołtysów", text_pl="Narada w urzędzie w piątek o 10:00.")
    assert draft.groups == ["soltysi"]
    shown = page(editor, f"/admin/messages/{draft.id}")
    assert 'data-reach="sms">2<' in shown and "Sołtysi i rady sołeckie" in shown
    response = editor.post("/admin/messages/new", data={
        "category": "official", "title_pl": "X", "text_pl": "Y", "target": "all", "channels": ["sms"],
        "when": "now", "audience": "groups"})
    assert response.status_code == 400 and "Wybierz co najmniej jedną grupę." in response.get_data(as_text=True)


def test_a_closed_group_without_a_legal_basis_stops_the_start_naming_the_field(tmp_path):
    import re

    import pytest

    from municipality import PROFILES_DIR
    from profiles import ProfileError, load_municipality

    text = (PROFILES_DIR / "kozy.toml").read_text(encoding="utf-8")
    path = tmp_path / "gmina.toml"
    path.write_text(re.sub(r'legal_basis = "art\. 6 ust\. 1 lit\. e RODO: zadanie publiczne gminy[^\n]*\n', "",
                           text, count=1), encoding="utf-8")
    with pytest.raises(ProfileError, match=r"groups #1\.legal_basis: a closed group needs the legal basis"):
        load_municipality(str(path))


def test_a_routine_message_to_a_group_rings_only_who_wants_calls_about_it(make_app, twilio):
    make_app(VOICE_BACKEND="twilio", TWILIO_VOICE_FROM="+48338100200")
    boss = make_staff("approver")
    sms_only = seed(2, categories={"official": 1}, areas=["KOZY"], start=0)
    weather_calls = seed(2, categories={"official": 1, "weather": 1}, areas=["KOZY"], calls={"weather": 2},
                         start=10)
    official_calls = seed(2, categories={"official": 1}, areas=["KOZY"], calls={"official": 1}, start=20)
    landline = seed(1, categories={"official": 1}, areas=["KOZY"], calls={"official": 1}, voice_only=True,
                    start=30)
    everyone = sms_only + weather_calls + official_calls + landline
    join(everyone, "osp", boss)
    routine = alert(category="official", level=None, groups=["osp"], channels=("sms", "voice"))
    assert lifecycle.publish(routine) == {"sms": 6, "voice": 3}
    called = set(db.session.scalars(select(Delivery.subscriber_id).where(Delivery.alert_id == routine.id,
                                                                          Delivery.channel == "voice")))
    assert called == set(official_calls + landline)
    # An emergency to the group rings every member who takes calls.
    urgent = alert(category="emergency", level=None, groups=["osp"], channels=("sms", "voice"),
                   title="Alarm", text="Zbiórka w remizie natychmiast.")
    assert lifecycle.publish(urgent) == {"sms": 6, "voice": 5}


def test_bad_group_input_is_refused_with_its_reason_and_nothing_changes(app, client, twilio):
    body = {"phone": "501 234 567", "consent": True, "categories": ["weather"], "areas": ["KOZY"]}
    answer = client.post("/api/v1/subscriptions", json={**body, "groups": "rolnicy"})
    assert answer.status_code == 400 and answer.get_json()["error"] == "bad_request"
    answer = client.post("/api/v1/subscriptions", json={**body, "groups": ["osp"]})
    assert (answer.status_code, answer.get_json()["error"]) == (400, "group_closed")
    answer = client.post("/api/v1/subscriptions", json={**body, "calls_only": "yes"})
    assert answer.status_code == 400 and answer.get_json()["field"] == "calls_only"
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0
    [sid] = seed(1, categories={"weather": 1}, areas=["KOZY"])
    approver = signed_in(app, make_staff("approver"))
    response = approver.post(f"/admin/subscribers/{sid}/groups", data={"group": "nobody"}, follow_redirects=True)
    assert message("group_unknown") in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(SubscriberGroup)) == 0
