"""The HTTP server: a threaded stdlib server on 127.0.0.1, and ``SystemLogServer`` to run it in-process.

Routes: ``GET /api/v1/logs`` and ``POST /oauth2/v1/token``; anything else
is Okta's 404. HTTP/1.1 with Content-Length and keep-alive. Request lines
are not logged at all, so no secret can leak through a log.
"""

from __future__ import annotations

import datetime as dt
import socket
import struct
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import orjson

from devtools.system_log_server.api import LOGS_PATH, LogsEndpoint, Response
from devtools.system_log_server.auth import Authenticator, TokenEndpoint, TokenStore, split_authorization
from devtools.system_log_server.config import EmulatorConfig
from devtools.system_log_server.dataset import (
    Feeder,
    LateSchedule,
    event_generator,
    generated_records,
    read_events_file,
)
from devtools.system_log_server.dpop import DPoPVerifier
from devtools.system_log_server.errors import OktaError
from devtools.system_log_server.faults import Fault
from devtools.system_log_server.stats import NO_RESPONSE, RequestRecord, Stats, StatsRecorder
from devtools.system_log_server.store import EventStore, record_from_event, record_from_line
from devtools.system_log_server.timestamps import now_us, parse_us

TOKEN_PATH = "/oauth2/v1/token"
_MAX_FORM_BYTES = 1 << 16


class SystemLogServer:
    """A local stand-in for Okta's System Log API; use as a context manager or start()/stop()."""

    def __init__(self, config: EmulatorConfig | None = None):
        self.config = config or EmulatorConfig()
        self.config.validate()
        self.skipped_lines = 0  # lines of events_file that were not LogEvents
        self._store = EventStore()
        self._stats = StatsRecorder()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._feeder: Feeder | None = None
        self._url: str | None = None
        self._auth: Authenticator | None = None

    def __enter__(self) -> SystemLogServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the server is not started")
        return self._url

    @property
    def stats(self) -> Stats:
        return self._stats.snapshot()

    @property
    def event_count(self) -> int:
        return len(self._store)

    def start(self) -> SystemLogServer:
        """Bind, load the events, serve. A server runs once: start() after stop() is refused."""
        if self._url is not None:
            raise RuntimeError("this server was already started")
        config = self.config
        httpd = _HTTPServer((config.host, config.port), _Handler)
        try:
            host, port = httpd.server_address[:2]
            url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
            tokens, dpop = TokenStore(), DPoPVerifier()
            self._auth = Authenticator(config, tokens, dpop)
            httpd.logs = LogsEndpoint(config, url, self._store, self._auth)
            httpd.token = TokenEndpoint(config, url + TOKEN_PATH, tokens, dpop)
            httpd.stats = self._stats
            self._load(config)
        except BaseException:
            httpd.server_close()
            raise
        self._url, self._httpd = url, httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="emulator-http", daemon=True)
        self._thread.start()
        return self

    def _load(self, config: EmulatorConfig) -> None:
        schedule = LateSchedule(config.late_fraction, config.late_seconds, config.seed)
        if config.events_file:
            records, self.skipped_lines = read_events_file(config.events_file)
            self._store.add(schedule.historical(records))
        if not (config.generate or config.append_rate):
            return
        # One generator for both, so streamed events come from the same users and never repeat a uuid.
        generator = event_generator(config.seed, config.personal_share, config.days, now_us())
        if config.generate:
            self._store.add(schedule.historical(generated_records(generator, config.generate)))
        if config.append_rate:
            self._feeder = Feeder(self._store, generator, config.append_rate, schedule)
            self._feeder.start()

    def outage(self, status: int | None = 503) -> None:
        """Answer every ``/api/v1/logs`` request with ``status`` (502, 503 or 504) from now on; None ends it."""
        self._httpd.logs.outage_status = status

    def revoke_token(self) -> None:
        """Revoke the SSWS token: from now on its calls get 401 E0000011 (a fault for tests)."""
        import secrets

        self._auth.set_api_token(secrets.token_hex(16))

    def restore_token(self) -> None:
        """Accept the configured SSWS token again (the admin issued it anew)."""
        self._auth.set_api_token(self.config.token)

    def stop(self) -> None:
        if self._feeder is not None:
            self._feeder.stop()
            self._feeder = None
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.close_connections()
            self._thread.join()
            self._httpd = None

    def append(self, events: list[dict | bytes], persisted_at: dt.datetime | str | None = None) -> None:
        """Add events now. They persist ``persisted_at`` (RFC 3339 text or an aware datetime), default now;
        an old ``published`` with the default makes a late-persisted event. ValueError for a bad event.
        An event given as bytes is one JSON Lines line, served byte for byte (hostile ones too)."""
        records = [record_from_line(event) if isinstance(event, bytes) else record_from_event(event)
                   for event in events]
        if isinstance(persisted_at, str):
            persisted = parse_us(persisted_at)
        elif isinstance(persisted_at, dt.datetime):
            persisted = parse_us(persisted_at.astimezone(dt.timezone.utc).isoformat())
        else:
            persisted = None
        self._store.add((record, persisted) for record in records)


class _HTTPServer(ThreadingHTTPServer):
    """Tracks open connections so that stop() also ends idle keep-alive ones."""

    daemon_threads = True
    request_queue_size = 128
    logs: LogsEndpoint
    token: TokenEndpoint
    stats: StatsRecorder

    def __init__(self, address, handler):
        super().__init__(address, handler)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request, client_address) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed by its handler
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def version_string(self) -> str:
        return "okta-system-log-emulator"

    def log_message(self, format, *args) -> None:  # noqa: A002 - the stdlib's signature
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        arrived = time.monotonic()
        path, query = _split(self.path)
        try:
            form = self._read_form() if method == "POST" else {}
            if path == LOGS_PATH and method == "GET":
                response = self.server.logs.handle(query, self.headers.get("Authorization"),
                                                   self.headers.get("DPoP"))
                scheme = split_authorization(self.headers.get("Authorization"))[0]
                status = NO_RESPONSE if response.fault is Fault.RESET else response.status
                window = dict(response.headers).get("X-Rate-Limit-Reset")
                self.server.stats.record(RequestRecord(arrived, self.path, status, scheme,
                                                       int(window) if window else None))
            elif path == TOKEN_PATH and method == "POST":
                self.server.stats.count_token_request()
                # Okta also takes the token request's parameters in the query string (older SDKs sent them so).
                answer = self.server.token.handle({**dict(parse_qsl(query)), **form}, self.headers.get("DPoP"))
                response = Response(answer.status, (("Content-Type", "application/json"),
                                                     ("Cache-Control", "no-store"), ("Pragma", "no-cache"),
                                                     *answer.headers), orjson.dumps(answer.body))
            elif path in (LOGS_PATH, TOKEN_PATH):
                response = _okta_error(OktaError(405, "E0000022"))
            else:
                response = _okta_error(OktaError(404, "E0000007", path))
        except Exception:  # an emulator bug must still answer like Okta, and be visible
            traceback.print_exc(file=sys.stderr)
            response = _okta_error(OktaError(500, "E0000009"))
        self._send(response)

    def _read_form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_FORM_BYTES:
            raise ValueError("request body too large")
        body = self.rfile.read(length).decode("utf-8", "replace")
        return dict(parse_qsl(body, keep_blank_values=True))

    def _send(self, response: Response) -> None:
        if response.fault is Fault.RESET:
            self._reset_connection()
            return
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.fault is Fault.TRUNCATE:
            self.wfile.write(response.body[: len(response.body) // 2])
            self.close_connection = True
        else:
            self.wfile.write(response.body)

    def _reset_connection(self) -> None:
        # SO_LINGER with a zero timeout turns close() into a TCP RST. The socket is detached first so that the
        # server's usual shutdown(SHUT_WR), which would send a FIN, finds nothing left to shut down.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        socket.socket(fileno=self.connection.detach()).close()
        self.close_connection = True


def _split(target: str) -> tuple[str, str]:
    parts = urlsplit(target)
    return parts.path, parts.query


def _okta_error(error: OktaError) -> Response:
    return Response(error.status, (("Content-Type", "application/json"), *error.headers), error.body())
