"""Real parallel requests against a real server, for the tests of limits and locks.

``serve(**overrides)`` starts a threaded werkzeug server on 127.0.0.1 around an app built by
``make_app(**overrides)`` (so: the test database, SMS to the fake Twilio) and returns its
base URL. ``at_once(n, call)`` runs ``call(i)`` in n threads released together by a
barrier, so the requests really overlap, and returns the results in order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.browser_support import _Dispatcher

T = TypeVar("T")


@pytest.fixture
def serve(make_app: Callable[..., Flask]) -> Iterator[Callable[..., str]]:
    servers: list[tuple[Any, threading.Thread]] = []

    def start(**overrides: Any) -> str:
        dispatcher = _Dispatcher()
        server = make_server("127.0.0.1", 0, dispatcher, threaded=True)
        base_url = f"http://127.0.0.1:{server.server_port}"
        dispatcher.app = make_app(PUBLIC_BASE_URL=base_url, **overrides)
        thread = threading.Thread(target=server.serve_forever, name="syrena-test-server", daemon=True)
        thread.start()
        servers.append((server, thread))
        return base_url

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def at_once(n: int, call: Callable[[int], T]) -> list[T]:
    """Run call(0..n-1) in n threads that start together."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T:
        barrier.wait(timeout=30)
        return call(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))
