"""A fake of the hazard feeds (IMGW, Meteoalarm, GIOŚ, RSO) on 127.0.0.1 for tests.

Serves the real recorded payloads from tests/fixtures/feeds by default, at the same paths as the
real services, so the real providers (requests) fetch from it. Each path can be told to
answer something else: another body, an HTTP error, an HTML page, or a slow answer, and
to validate like a caching server (`etags = True`: an ETag per body, 304 to a matching
If-None-Match; `conditional` counts those).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

# The recorded payloads travel with the project (tests/fixtures/feeds/README.md: provenance).
FEED_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"

METEO = "/api/data/warningsmeteo"
HYDRO = "/api/data/warningshydro"
METEOALARM = "/api/v1/warnings/feeds-poland"
GIOS_SENSORS = "/pjp-api/v1/rest/station/sensors/789"
GIOS_DATA = "/pjp-api/v1/rest/data/getData/{sensor}"
RSO = "/komunikatyxml/slaskie/wszystkie/1"


def sample(name: str) -> bytes:
    return (FEED_FIXTURES / name).read_bytes()


def sample_json(name: str) -> Any:
    return json.loads(sample(name))


class FeedServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, tuple[int, bytes, str, float]] = {}
        self.requests: list[str] = []
        self.etags = False
        self.conditional: list[str] = []  # paths answered 304
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-feeds")

    def __enter__(self) -> FeedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.etags = False
            self.conditional.clear()
            self._routes = {
                METEO: (200, sample("imgw_warningsmeteo_sample.json"), "application/json", 0.0),
                HYDRO: (200, sample("imgw_warningshydro_sample.json"), "application/json", 0.0),
                METEOALARM: (200, sample("meteoalarm_poland_json_excerpt.json"), "application/json", 0.0),
                RSO: (200, sample("rso_komunikaty_page_excerpt.xml"), "application/xml", 0.0),
            }

    def serve(self, path: str, body: Any, status: int = 200, content_type: str = "application/json",
              delay: float = 0.0) -> None:
        """Answer `path` with `body` (JSON-encoded unless bytes/str)."""
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body, ensure_ascii=True)
        raw = body.encode("utf-8") if isinstance(body, str) else body
        with self._lock:
            self._routes[path] = (status, raw, content_type, delay)

    def count(self, path: str) -> int:
        with self._lock:
            return sum(1 for p in self.requests if p == path)

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        with self._lock:
            self.requests.append(request.path)
            route = self._routes.get(request.path)
        if route is None:
            return Response("not found", status=404)(environ, start_response)
        status, body, content_type, delay = route
        if delay:
            time.sleep(delay)
        if self.etags and status == 200:
            import hashlib

            tag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if request.headers.get("If-None-Match") == tag:
                with self._lock:
                    self.conditional.append(request.path)
                return Response(status=304, headers={"ETag": tag})(environ, start_response)
            return Response(body, status=200, content_type=content_type,
                            headers={"ETag": tag})(environ, start_response)
        return Response(body, status=status, content_type=content_type)(environ, start_response)
