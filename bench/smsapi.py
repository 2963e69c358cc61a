"""SMSAPI: SMS per second through our SMSAPI channel vs bare `requests` posts.

What is measured: the wall time for 2,000 `SmsapiSms.send` calls (providers/smsapi_sms.py,
i.e. the real smsapi-client: its endpoint binding, its `requests.request` per call, its
result mapping, then our result and error handling) on 32 threads, to
tests/fakes/smsapi_api.FakeSmsapi in its own process (so its request handling does not
share our GIL). Median of 3, ours and the baseline alternating.

The baseline is the least a sender can do to hand the same messages to the same fake with
the same concurrency: one `requests.Session` (trust_env off, a pool of 32 connections),
32 threads, POSTing the same form fields (to, message, encoding, idx, check_idx,
notify_url, expiration_date, format=json) with the same bearer token to the same URL and
reading the message id out of the JSON answer. The fake answers `Connection: close`, as
werkzeug does, so neither side keeps connections alive: the ratio is what the client
library and our channel add per message.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from bench.common import FakeProcess, Figure, cpu_seconds, free_memory, median, progress, runs_text

FULL_COUNT = 2_000
RUNS = 3
CONCURRENCY = 32
TARGET_RATIO = 0.5
TOKEN = "bench-smsapi-token"
BODY = "Gmina Kozy: Burze 2. stopnia. Burze z gradem. Zabezpiecz rzeczy na balkonie. alerty.example.pl"


def _start_smsapi() -> Any:
    import logging

    from tests.fakes.smsapi_api import FakeSmsapi

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access line per request
    return FakeSmsapi(token=TOKEN).start()


def _smsapi_url(fake: Any) -> str:
    return fake.base_url


def _smsapi_counts(fake: Any) -> dict[str, Any]:
    return {"messages": len(fake.messages)}


def fake_smsapi_process() -> FakeProcess:
    """tests/fakes/smsapi_api.FakeSmsapi in a separate process; `info` is its base URL."""
    return FakeProcess("fake SMSAPI", _start_smsapi, _smsapi_url, _smsapi_counts)


@dataclass
class Sample:
    seconds: float
    client_cpu: float
    fake_cpu: float


def _messages(count: int) -> list[Any]:
    from providers.sms import SmsMessage

    return [SmsMessage(to=f"+48500{n:06d}", body=BODY, validity_seconds=6 * 3600, reference=str(n + 1),
                       status_callback=f"https://alerty.example.pl/webhooks/smsapi/status?d={n + 1}&s=x")
            for n in range(count)]


class RawSender:
    """The baseline: bare `requests` posts of the same form fields."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url.rstrip("/") + "/sms.do"
        self.session = requests.Session()
        self.session.trust_env = False
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=CONCURRENCY)
        self.session.mount("http://", adapter)
        self.headers = {"Authorization": f"Bearer {TOKEN}"}

    def post(self, message: Any) -> str:
        form = {"to": message.to.lstrip("+"), "message": message.body, "encoding": "utf-8",
                "idx": message.reference, "check_idx": "1", "notify_url": message.status_callback,
                "expiration_date": str(int(time.time()) + message.validity_seconds), "format": "json"}
        response = self.session.post(self.url, data=form, headers=self.headers, timeout=10)
        return response.json()["list"][0]["id"]

    def close(self) -> None:
        self.session.close()


def _timed(fake: FakeProcess, send: Any, messages: list[Any]) -> Sample:
    fake.reset()
    free_memory()
    fake_before = fake.stats()["cpu_seconds"]
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        refs = set(pool.map(send, messages))
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_before
    stats = fake.stats()
    if len(refs) != len(messages) or stats["messages"] != len(messages):
        raise AssertionError(f"{len(refs)} distinct ids, fake got {stats['messages']}, expected {len(messages)}")
    return Sample(elapsed, cpu, stats["cpu_seconds"] - fake_before)


def measure(count: int, *, runs: int = RUNS) -> tuple[list[Sample], list[Sample]]:
    from providers.smsapi_sms import SmsapiSms

    ours: list[Sample] = []
    raw: list[Sample] = []
    messages = _messages(count)
    with fake_smsapi_process() as fake:
        channel = SmsapiSms(TOKEN, callback_secret="bench-secret", api_base=fake.info, timeout=10)
        sender = RawSender(fake.info)

        def send_ours(message: Any) -> str:
            return channel.send(message).provider_ref

        try:
            _timed(fake, send_ours, messages[:100])  # warm-up, untimed
            _timed(fake, sender.post, messages[:100])
            for run in range(runs):
                for which in (("ours", "raw") if run % 2 == 0 else ("raw", "ours")):
                    sample = _timed(fake, send_ours if which == "ours" else sender.post, messages)
                    (ours if which == "ours" else raw).append(sample)
                    progress(f"smsapi run {run + 1} {which}: {count / sample.seconds:,.0f} msg/s "
                             f"({sample.seconds:.2f} s, client CPU {sample.client_cpu / count * 1e6:.0f} us/msg)")
        finally:
            sender.close()
    return ours, raw


def _describe(samples: list[Sample], count: int) -> str:
    rates = [count / s.seconds for s in samples]
    cpu = median([s.client_cpu / count * 1e6 for s in samples])
    fake_cpu = median([s.fake_cpu / count * 1e6 for s in samples])
    return (f"{median(rates):,.0f} msg/s (runs {runs_text(rates, '{:,.0f}')}; "
            f"client CPU {cpu:,.0f} us/msg, fake {fake_cpu:,.0f} us/msg)")


def main(quick: bool = False) -> list[str]:
    """One line: msg/s through SmsapiSms + smsapi-client vs bare requests posts."""
    count = FULL_COUNT // 10 if quick else FULL_COUNT
    ours, raw = measure(count)
    ours_rate = median([count / s.seconds for s in ours])
    raw_rate = median([count / s.seconds for s in raw])
    ratio = ours_rate / raw_rate
    return [Figure(
        name=f"smsapi     SmsapiSms + smsapi-client, {count:,} SMS, {CONCURRENCY} threads",
        ours=_describe(ours, count),
        baseline=f"bare requests.Session, {CONCURRENCY} threads, same forms " + _describe(raw, count),
        ratio=ratio,
        ratio_text="our msg/s / raw msg/s",
        target=f">= {TARGET_RATIO:.2f}x",
        passed=ratio >= TARGET_RATIO,
    ).line()]


if __name__ == "__main__":
    for output in main(quick="--quick" in sys.argv):
        print(output, flush=True)
