"""A roll-call to 10,000 residents, answered at once by SMS replies, personal links and calls
through the real HTTP doors of a live server, with pairs of answers racing for the same
resident: the tally is exact, and each resident counts once with their latest answer."""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from db import db
from population import phone_for, seed
from rollcall import tally
from rollcall.models import HELP, SAFE, UNCLEAR, RollCall, RollCallAnswer, RollCallMember
from tests.parallel import serve  # noqa: F401 - the fixture
from tests.test_admin_messages import make_staff
from tests.test_delivery import drain
from tests.test_rollcall import start

AREAS = ("BUJ", "CZA", "KOB", "POR")
RESIDENTS = 10_000
CALLERS = 200  # want calls; the first half are landlines (calls only)
FAILING = 100  # numbers the network refuses: undeliverable
SMS, LINKS, RACES = 900, 900, 200  # answers by SMS, by link, and residents answering both ways at once
WORKERS = 16
_sids = itertools.count(1)


def test_a_roll_call_to_ten_thousand_residents_is_counted_exactly(serve, twilio):  # noqa: F811
    from flask import current_app

    base = serve(SYRENA_MUNICIPALITY="porabka", VOICE_BACKEND="twilio", TWILIO_VOICE_FROM="+48338100200",
                 VOICE_CALLS_PER_SECOND=0)
    app = current_app._get_current_object()
    boss = make_staff("approver")
    seed(RESIDENTS - CALLERS, categories={"weather": 1}, areas=[], area_of=lambda n: [AREAS[n % 4]], start=0)
    seed(CALLERS // 2, categories={"weather": 1}, areas=[], area_of=lambda n: [AREAS[n % 4]],
         start=RESIDENTS - CALLERS, calls={"weather": 2}, voice_only=True)
    seed(CALLERS // 2, categories={"weather": 1}, areas=[], area_of=lambda n: [AREAS[n % 4]],
         start=RESIDENTS - CALLERS // 2, calls={"weather": 2})
    failing = [phone_for(n) for n in range(0, FAILING * 7, 7)]
    for phone in failing:
        twilio.fail_number(phone, 21211)
    roll_call = start(boss)
    drain(app)
    bodies = {m["To"]: m["Body"] for m in twilio.messages}
    assert len(bodies) == RESIDENTS - CALLERS // 2 - FAILING
    calls = {c["To"]: c["sid"] for c in twilio.calls}
    assert len(calls) == CALLERS

    rng = random.Random(14)
    number = {phone_for(n): n for n in range(RESIDENTS)}
    texters = [p for p in bodies if number[p] < RESIDENTS - CALLERS]
    rng.shuffle(texters)
    # Everyone is asked; a fifth answer here (each answer is a real request to one server
    # process), the rest stay "no answer yet" or "undeliverable", which the tally must get
    # right too.
    by_sms, by_link, racing = texters[:SMS], texters[SMS:SMS + LINKS], texters[SMS + LINKS:SMS + LINKS + RACES]
    words = {SAFE: ["TAK", "tak", "Tak, wszystko ok", "jesteśmy bezpieczni"],
             HELP: ["POMOC", "pomocy!", "Potrzebujemy pomocy, woda w domu"], UNCLEAR: ["zalało piwnicę"]}
    sms_url = f"{base}/webhooks/twilio/inbound"
    validator = RequestValidator(twilio.auth_token)
    local = __import__("threading").local()

    def session() -> requests.Session:
        if getattr(local, "s", None) is None:
            local.s = requests.Session()
            local.s.trust_env = False
        return local.s

    def text_us(phone: str, body: str) -> int:
        form = {"MessageSid": f"SM{next(_sids):032d}", "AccountSid": twilio.account_sid, "From": phone,
                "To": "+48732000000", "Body": body, "NumMedia": "0"}
        headers = {"X-Twilio-Signature": validator.compute_signature(sms_url, form)}
        return session().post(sms_url, data=form, headers=headers, timeout=30).status_code

    def press(phone: str, choice: str) -> int:
        path = re.search(r"/r/[0-9.A-Za-z_-]+", bodies[phone]).group(0)
        return session().post(base + path, data={"answer": choice}, timeout=30, allow_redirects=False).status_code

    kinds = [SAFE, SAFE, SAFE, HELP, UNCLEAR]
    plan = ([(text_us, p, rng.choice(words[rng.choice(kinds)])) for p in by_sms]
            + [(press, p, rng.choice([SAFE, HELP])) for p in by_link])
    # Racing pairs: the same resident's SMS and link answer sent at the same moment.
    for phone in racing:
        plan += [(text_us, phone, "TAK"), (press, phone, HELP)]
    rng.shuffle(plan)
    keys = {phone: rng.choice(["1", "2"]) for phone in calls}

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        statuses = list(pool.map(lambda job: job[0](*job[1:]), plan))
        heard = list(pool.map(lambda phone: twilio.ring(calls[phone], keys=[keys[phone]]), calls))
    assert Counter(statuses) == Counter({200: SMS + RACES, 303: LINKS + RACES})
    assert all("naciśnij 2" in h.text for h in heard)

    # The truth, from the log of every answer: each member's latest (time, then id).
    db.session.expire_all()
    log = db.session.execute(select(RollCallAnswer.member_id, RollCallAnswer.received_at, RollCallAnswer.id,
                                    RollCallAnswer.answer)).all()
    assert len(log) == len(plan) + len(calls)
    latest: dict[int, tuple] = {}
    for member_id, at, answer_id, answer in log:
        if member_id not in latest or (at, answer_id) > latest[member_id][:2]:
            latest[member_id] = (at, answer_id, answer)
    members = db.session.execute(select(RollCallMember.id, RollCallMember.area, RollCallMember.answer,
                                        RollCallMember.answer_id)
                                 .where(RollCallMember.roll_call_id == roll_call.id)).all()
    assert len(members) == RESIDENTS  # each once
    for member_id, _area, answer, answer_id in members:
        if member_id in latest:
            assert (answer_id, answer) == latest[member_id][1:], member_id
        else:
            assert answer is None
    # Voice: 1 is safe, 2 is help, for every call.
    voice_answers = dict(db.session.execute(
        select(RollCallAnswer.member_id, RollCallAnswer.answer).where(RollCallAnswer.via == "voice")).all())
    assert Counter(voice_answers.values()) == Counter(SAFE if k == "1" else HELP for k in keys.values())

    expected: dict[str, Counter] = {a: Counter() for a in AREAS}
    failed_phones = set(failing)
    phone_of_member = dict(db.session.execute(
        select(RollCallMember.id, RollCallMember.subscriber_id)).all())
    from subscribers.models import Subscriber

    phones = dict(db.session.execute(select(Subscriber.id, Subscriber.phone)).all())
    for member_id, area, answer, _answer_id in members:
        state = ({SAFE: "safe", HELP: "help", UNCLEAR: "help"}[answer] if answer
                 else "undeliverable" if phones[phone_of_member[member_id]] in failed_phones else "waiting")
        expected[area][state] += 1
    per_area, total = tally.counts(db.session.get(RollCall, roll_call.id))
    got = {c.area: Counter({"safe": c.safe, "help": c.help, "undeliverable": c.undeliverable,
                            "waiting": c.waiting}) for c in per_area}
    assert got == {a: +expected[a] for a in AREAS}
    assert total.asked == RESIDENTS and total.undeliverable == FAILING
    # The racing pairs: each resident once, with whichever of the two came last.
    raced = {number[p] for p in racing}
    assert sum(1 for m in members if m[2] is not None and phones[phone_of_member[m[0]]] in
               {phone_for(n) for n in raced}) == len(racing)
