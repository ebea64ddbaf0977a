"""Prometheus metrics and a health check for local runs: ``--metrics_port=N``.

A local run (batch, the Okta tail loop, the Pub/Sub loop) serves on
``--metrics_host`` (127.0.0.1 by default):

- ``/metrics``: the pipeline's counters (the same increments as its Beam
  metrics, namespace ``okta_personal``; :mod:`common.metrics` mirrors them
  here), the commit-duration histogram, the lag and the cursor age, each with
  an ``org`` label (the Okta org's host; "" for files and Pub/Sub), and the
  freshness histograms (receipt to commit, ``published`` to commit), labelled
  with each committed event's own org (so a many-org tail has one per org);
- ``/healthz``: 200, or 503 when a streaming run has closed no window, or not
  reached its source, for ``--healthz_stall``. A batch run is healthy while
  it runs.

Counts from Beam workers in other processes
(``--direct_running_mode=multi_processing``) do not reach this endpoint; the
run summary has them. On Dataflow nothing is served: the counters stay Beam
metrics, visible in the Dataflow UI.
"""

from __future__ import annotations

import contextlib
import http.server
import sys
import threading
import time
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from common import metrics
from common.flags import duration_seconds

PREFIX = metrics.NAMESPACE + "_"
#: The Beam counters served, name -> meaning (each as ``okta_personal_<name>_total``).
COUNTERS = {**metrics.COUNTERS, **metrics.API_COUNTERS, **metrics.BIGQUERY_COUNTERS, **metrics.ICEBERG_COUNTERS,
            **metrics.STREAM_COUNTERS}
DEAD_LETTER_STAGES = "dead_letters_by_stage"
COMMIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
#: Freshness histograms (:data:`common.metrics.FRESHNESS`): fine around the 15 s target, coarse past it.
FRESHNESS_BUCKETS = (0.5, 1, 2, 3, 5, 7.5, 10, 12.5, 15, 20, 30, 60, 120, 300, 900, 3600)
#: Gauges computed when scraped: name -> meaning.
GAUGES = {
    "lag_seconds": "now minus the newest committed event's published time (NaN before the first commit)",
    "newest_committed_published_seconds": "published time of the newest committed event, epoch seconds",
    "cursor_age_seconds": "seconds since the polling cursor in --state was last stored (NaN without one)",
    "seconds_since_window_closed": "seconds since a window was last closed (committed, or nothing to commit)",
    "healthy": "1 when /healthz answers 200, else 0",
}


#: Schema drift (:data:`common.metrics.DRIFT_COUNTERS`), one family per kind, labelled as it says.
DRIFT_PREFIX = PREFIX + "drift_"
#: Series per drift family at most (an open map keyed by ids must not grow the endpoint without bound); more
#: are counted under the label value "(more)".
MAX_DRIFT_SERIES = 2000


def exported_names() -> set[str]:
    """Every sample name this module can serve (what the dashboard and alert rules may use)."""
    names = {f"{PREFIX}{name}_total" for name in COUNTERS}
    names |= {f"{DRIFT_PREFIX}{name}_total" for name in metrics.DRIFT_COUNTERS}
    names |= {f"{PREFIX}{DEAD_LETTER_STAGES}_total"}
    names |= {f"{PREFIX}commit_duration_seconds_{s}" for s in ("bucket", "count", "sum")}
    names |= {f"{PREFIX}{name}_{s}" for name in metrics.FRESHNESS for s in ("bucket", "count", "sum")}
    names |= {PREFIX + name for name in GAUGES}
    return names


@dataclass(frozen=True)
class MonitoringSettings:
    """``--metrics_port`` and friends, parsed."""

    port: int | None = None  # None: no endpoint
    host: str = "127.0.0.1"
    stall_seconds: float = 600.0  # /healthz: a streaming run that closed no window for this long is unhealthy
    log_format: str = "text"


def add_flags(parser) -> None:
    monitoring = parser.add_argument_group("Monitoring (local runs)")
    monitoring.add_argument(
        "--metrics_port", type=int, default=None,
        help="Serve Prometheus metrics on this port while a local run (batch or streaming) runs: /metrics (the "
             "okta_personal counters, commit duration, freshness, lag, cursor age; label org) and /healthz. 0 picks "
             "a free port (printed). On Dataflow the counters stay Beam metrics.")
    monitoring.add_argument(
        "--metrics_host", default="127.0.0.1",
        help="Address the metrics endpoint listens on (default 127.0.0.1, this machine only; 0.0.0.0 for all).")
    monitoring.add_argument(
        "--healthz_stall", default="10m",
        help="/healthz answers 503 when a streaming run has closed no window, or not reached its source, for "
             "this long (e.g. 10m; at least one --window). A batch run is healthy while it runs.")
    monitoring.add_argument(
        "--log_format", choices=("text", "json"), default="text",
        help="text: human-readable lines on stderr; json: one JSON object per line (severity, message, time, "
             "run_id, logger; the fields Cloud Logging reads), for log shippers.")


def resolve(options, problems: list[str], *, window: float | None) -> MonitoringSettings | None:
    """The monitoring settings; ``window`` is a streaming run's window length (the stall must cover one)."""
    found = len(problems)
    if options.metrics_port is not None and not 0 <= options.metrics_port <= 65535:
        problems.append(f"--metrics_port must be between 0 and 65535, got {options.metrics_port}")
    stall = duration_seconds(options, "healthz_stall", problems)
    if stall is not None and options.metrics_port is not None and window is not None and stall < window:
        problems.append(f"--healthz_stall {options.healthz_stall} must be at least one --window ({options.window}), "
                        "or /healthz would report every window as a stall")
    if len(problems) > found:
        return None
    return MonitoringSettings(options.metrics_port, options.metrics_host, stall, options.log_format)


def org_label(orgs) -> str:
    """The org's host when the run reads one Okta org (``orgs``: its org specs); "" otherwise."""
    return orgs[0].host if orgs and len(orgs) == 1 else ""


class LocalMetrics:
    """The Prometheus side of one run; installed as :mod:`common.metrics`' mirror."""

    def __init__(self, org: str, streaming: bool, stall_seconds: float, cursor_stored_at: float | None = None,
                 clock=time.time):
        self.org, self.streaming, self.stall_seconds, self._clock = org, streaming, stall_seconds, clock
        self.registry = CollectorRegistry()
        now = clock()
        self._window_closed = self._source_reached = now
        self._newest: float | None = None
        self._cursor_stored_at = cursor_stored_at
        self._counters = {name: Counter(PREFIX + name, meaning, ["org"], registry=self.registry).labels(org)
                          for name, meaning in COUNTERS.items()}
        self._by_stage = Counter(PREFIX + DEAD_LETTER_STAGES, "dead letters per stage (decode, validate, flatten)",
                                 ["org", "stage"], registry=self.registry)
        self._drift = {kind: Counter(DRIFT_PREFIX + kind, meaning, ["org", *labels], registry=self.registry)
                       for kind, (meaning, labels) in metrics.DRIFT_COUNTERS.items()}
        self._drift_series: dict[str, set] = {kind: set() for kind in metrics.DRIFT_COUNTERS}
        self._commit = Histogram(PREFIX + "commit_duration_seconds", metrics.MEASUREMENTS["commit_seconds"],
                                 ["org"], buckets=COMMIT_BUCKETS, registry=self.registry).labels(org)
        self._freshness = {name: Histogram(PREFIX + name, meaning, ["org"], buckets=FRESHNESS_BUCKETS,
                                           registry=self.registry) for name, meaning in metrics.FRESHNESS.items()}
        readings = {
            "lag_seconds": lambda: self._since(self._newest),
            "newest_committed_published_seconds": lambda: float("nan") if self._newest is None else self._newest,
            "cursor_age_seconds": lambda: self._since(self._cursor_stored_at),
            "seconds_since_window_closed": lambda: self._since(self._window_closed),
            "healthy": lambda: 1.0 if self.healthy()[0] else 0.0,
        }
        for name, meaning in GAUGES.items():
            Gauge(PREFIX + name, meaning, ["org"], registry=self.registry).labels(org).set_function(readings[name])

    def _since(self, moment: float | None) -> float:
        return float("nan") if moment is None else max(0.0, self._clock() - moment)

    def inc(self, name: str, n: int) -> None:
        if name.startswith("dead_letters_"):
            self._by_stage.labels(self.org, name[len("dead_letters_"):]).inc(n)
            return
        child = self._counters.get(name)
        if child is not None and n > 0:
            child.inc(n)
        if name == "cursor_stored":
            self._cursor_stored_at = self._clock()
        elif name == "okta_pages":
            self._source_reached = self._clock()

    def drift(self, kind: str, labels: tuple, n: int) -> None:
        """A schema drift count (:func:`common.metrics.count_drift`): ``labels`` as the kind's family names them."""
        series = self._drift_series[kind]
        if labels not in series:
            if len(series) >= MAX_DRIFT_SERIES:
                labels = labels[:1] + ("(more)",) * (len(labels) - 1)
            series.add(labels)
        self._drift[kind].labels(self.org, *labels).inc(n)

    def measure(self, name: str, value: float) -> None:
        if name == "commit_seconds":
            self._commit.observe(value)
        elif name == "newest_published":
            self._newest = value if self._newest is None else max(self._newest, value)
        elif name == "window_closed":
            self._window_closed = value
        elif name == "source_reached":
            self._source_reached = value
        elif name == "cursor_loaded":  # the stored cursor a run starts from: its age counts from its storing
            self._cursor_stored_at = value if self._cursor_stored_at is None else self._cursor_stored_at

    def observe(self, name: str, org: str, values) -> None:
        histogram = self._freshness[name].labels(org)
        for value in values:
            histogram.observe(value)

    def healthy(self) -> tuple[bool, str]:
        """(healthy, why): a streaming run must close windows and reach its source within the stall time."""
        if not self.streaming:
            return True, "batch run in progress"
        now = self._clock()
        for what, moment in (("closed a window", self._window_closed), ("reached its source", self._source_reached)):
            if now - moment > self.stall_seconds:
                return False, (f"stalled: has not {what} for {now - moment:.0f} s "
                               f"(--healthz_stall {self.stall_seconds:g} s)")
        return True, "ok"

    def scrape(self) -> bytes:
        return generate_latest(self.registry)


class _Handler(http.server.BaseHTTPRequestHandler):
    local: LocalMetrics  # set on the subclass made per server

    def do_GET(self):  # noqa: N802 - the http.server hook's name
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._answer(200, self.local.scrape(), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            ok, why = self.local.healthy()
            self._answer(200 if ok else 503, (why + "\n").encode(), "text/plain; charset=utf-8")
        else:
            self._answer(404, b"not found: try /metrics or /healthz\n", "text/plain; charset=utf-8")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - no access log on stderr (it is the run's log)
        pass


class MetricsServer:
    """``/metrics`` and ``/healthz`` on a daemon thread; ``close()`` stops it."""

    def __init__(self, local: LocalMetrics, host: str, port: int):
        handler = type("Handler", (_Handler,), {"local": local})
        self.httpd = http.server.ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics-server", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def serving(settings: MonitoringSettings, streaming: bool, local: bool, org: str = ""):
    """Serve the run's metrics while the ``with`` body runs (only on a local run with --metrics_port).

    ``org`` labels the series (the one org a run reads, or "").
    """
    if settings.port is None or not local:
        if settings.port is not None:
            print("note: --metrics_port serves local runs only; on a service the counters are Beam metrics "
                  f"(namespace {metrics.NAMESPACE})", file=sys.stderr, flush=True)
        yield None
        return
    local_metrics = LocalMetrics(org, streaming, settings.stall_seconds)
    server = MetricsServer(local_metrics, settings.host, settings.port)
    print(f"metrics: http://{settings.host}:{server.port}/metrics and /healthz", file=sys.stderr, flush=True)
    metrics.mirror_to(local_metrics)
    try:
        yield server
    finally:
        metrics.mirror_to(None)
        server.close()
