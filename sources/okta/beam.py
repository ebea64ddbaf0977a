"""Read the Okta System Log API as ``RawBatch`` elements: one element per page of up to 1000 events.

- :class:`ReadSystemLogRange` (backfills): the range is cut into half-open
  time slices, spread over workers; each slice is read with bounded requests
  until its last page. A 500 ``E0000009`` (Okta's 30 s query timeout) splits
  what is left of the slice in two and reads both halves.
- :class:`ReadSystemLogTail` (scheduled incremental runs): resumes the
  polling chain from the cursor in ``--state`` (or starts ``--lookback``
  back), follows next links while pages are full, stops at the first short
  page (caught up; its next link is not asked for), and hands that page's next
  link on; :class:`StoreCursor` writes it only after the lake is committed,
  so a crash at any point re-reads (and dedupes) instead of losing.

All workers of one process share one rate governor per org; across
processes they pace by Okta's own ``X-Rate-Limit-Remaining``.

Many orgs (``--orgs``): one reader thread (or a few) per org, each org isolated.

- :class:`ReadOrgsRange` (backfills): every org's ``[since, until)`` cut into slices; the work items are
  keyed by ``(org, slice)``, and each org's slices are read by that org's own threads through that
  org's own rate governor (:func:`sources.okta.connect.shared_governor`), so one org's pacing or 429s
  never hold a thread another org needs.
- :class:`ReadOrgsTail` (incremental runs): each org's polling chain from its own cursor file to
  caught up; each org's new cursor goes to the ``CURSOR`` output, stored only after the commit
  (:class:`sources.okta.beam.StoreCursor`).

Isolation: an org whose credential is refused (401/403), whose URL is wrong or that is down stops
only itself. Its error goes to the ``ORG_REPORTS`` output (one record per org: ``{"kind": "org",
"org", "status": "ok" | "failed", "error"}``), its cursor is not stored, and the others go on. The
pages it had already delivered are staged like any others, but the commit withholds them (the
reports are its side input, :class:`sinks.lake.beam.WriteLake`): nothing of a failed org is committed,
and the rerun reads it whole.

Both run as one element with threads inside: Beam's local runner hands a stage's elements to its
workers in bundles, and a bundle holding two orgs would read them one after the other.
"""

from __future__ import annotations

import datetime as _dt
import queue
import threading

import apache_beam as beam

from common.durations import rfc3339
from common.metrics import counter
from sinks.lake import records as run_records
from sources.okta import state as okta_state
from sources.okta.connect import OktaSettings, build_client
from sources.okta.polling import UTC, ApiMetrics, starting_point, starting_url
from sources.okta.slices import slice_pages, time_slices
from transforms import beam as batch_coders  # noqa: F401  (registers the batch coders)
from transforms.records import RawBatch

CURSOR = "cursor"


class _FetchSlicesFn(beam.DoFn):
    def __init__(self, settings: OktaSettings):
        self.settings = settings

    def setup(self):
        self._metrics = ApiMetrics()
        self._client = build_client(self.settings, on_event=self._metrics)

    def process(self, time_slice):
        yield from slice_pages(self._client, self.settings, time_slice, on_split=self._metrics.splits.inc)


class ReadSystemLogRange(beam.PTransform):
    """[since, until) of the System Log -> ``RawBatch`` pages, slices read in parallel."""

    def __init__(self, settings: OktaSettings, since: _dt.datetime, until: _dt.datetime,
                 slice_length: _dt.timedelta):
        super().__init__()
        self.settings = settings
        self.slices = list(time_slices(since, until, slice_length))

    def expand(self, pbegin):
        return (
            pbegin
            | "Slices" >> beam.Create(self.slices)
            # Keyed grouping spreads slices over local workers (Reshuffle did not; see the notes).
            | "KeySlices" >> beam.Map(lambda s: (s[0], s))
            | "SpreadSlices" >> beam.GroupByKey()
            | "Unkey" >> beam.FlatMap(lambda kv: kv[1])
            | "FetchSlices" >> beam.ParDo(_FetchSlicesFn(self.settings)).with_output_types(RawBatch)
        )


class _PollUntilCaughtUpFn(beam.DoFn):
    def __init__(self, settings: OktaSettings, state_uri: str | None, lookback: _dt.timedelta, run_id: str,
                 iceberg=None):
        self.settings, self.state_uri, self.lookback, self.run_id = settings, state_uri, lookback, run_id
        self.iceberg = iceberg

    def setup(self):
        self._client = build_client(self.settings, on_event=ApiMetrics())

    def process(self, _):
        start = starting_point(self._client, self.settings, self.state_uri, self.lookback, self.iceberg)
        next_url = start.url
        asked = _dt.datetime.now(UTC)  # when the page being read was asked for
        for number, page in enumerate(self._client.polling_pages(start.url)):
            caught_up = rfc3339(asked)  # the last page is short: it held all Okta had persisted when asked
            if page.events:
                yield RawBatch(page.url, "page", [number + 1], [page.body], org=self.settings.org)
            next_url = page.next_url or next_url
            asked = _dt.datetime.now(UTC)
        yield beam.pvalue.TaggedOutput(CURSOR, okta_state.CursorState(
            self.settings.org_url, self.settings.filter, next_url, run_id=self.run_id,
            caught_up_at=caught_up, started=start.describe()))


class ReadSystemLogTail(beam.PTransform):
    """The polling chain from the stored cursor to 'caught up'; outputs pages and the new cursor.

    ``iceberg``: the run's Iceberg table, whose newest cursor of the org comes before ``state_uri``'s
    (:func:`sources.okta.polling.starting_point`); ``state_uri`` may then be None.
    """

    def __init__(self, settings: OktaSettings, state_uri: str | None, lookback: _dt.timedelta, run_id: str,
                 iceberg=None):
        super().__init__()
        self.settings, self.state_uri, self.lookback, self.run_id = settings, state_uri, lookback, run_id
        self.iceberg = iceberg

    def expand(self, pbegin):
        return (
            pbegin
            | "Start" >> beam.Create([None])
            | "PollUntilCaughtUp" >> beam.ParDo(
                _PollUntilCaughtUpFn(self.settings, self.state_uri, self.lookback, self.run_id, self.iceberg)
            ).with_output_types(RawBatch).with_outputs(CURSOR, main="pages")
        )


class _StoreCursorFn(beam.DoFn):
    def __init__(self, state_uri: str, lake: str = ""):
        self.state_uri, self.lake = state_uri, lake

    def process(self, state, manifest):
        # `manifest` is a side input: this runs only once the lake commit has finished.
        # A many-org run gives (its state file, cursor) per org (sources.okta.beam).
        uri, state = state if isinstance(state, tuple) else (self.state_uri, state)
        if uri:  # without --state the Iceberg snapshot (committed before this) holds the cursor
            okta_state.store(uri, state)
        counter("cursor_stored").inc()
        if self.lake:  # the chain link, for the coverage report: only once the cursor is stored
            run_records.record_quietly(run_records.write_cursor_record, self.lake, state.run_id,
                                       run_records.cursor_link(state, "incremental", state_uri=uri,
                                                               started_at=manifest.get("started_at", "")))
        yield state.next_url


class StoreCursor(beam.PTransform):
    """Write the new cursor (or each org's), strictly after the run's lake commit (given as ``manifest``).

    With ``lake``, then also the run's chain link ``LAKE/_runs/<run_id>.cursor.json`` (:mod:`sinks.lake.records`).
    """

    def __init__(self, state_uri: str, manifest, lake: str = ""):
        super().__init__()
        self.state_uri, self.manifest, self.lake = state_uri, manifest, lake

    def expand(self, cursors):
        return cursors | beam.ParDo(_StoreCursorFn(self.state_uri, self.lake),
                                    beam.pvalue.AsSingleton(self.manifest))


ORG_REPORTS = "org_reports"
LANES_PER_ORG = 2  # threads per org in a backfill: enough to keep one org's budget busy
_QUEUE_PAGES = 16  # pages waiting to be handed on, over all orgs (bounds memory)
_DONE = object()


def error_line(exc: BaseException) -> str:
    """One line naming the error (the client's messages name the request, never a credential)."""
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text[:300]}"


class _OrgRun:
    """One org's reading: its client (built in its thread), its failure, its delivered pages."""

    def __init__(self, org, metrics: ApiMetrics):
        self.org, self.metrics = org, metrics
        self.error: str | None = None
        self.next_url: str | None = None  # the polling chain's last next link (incremental runs)
        self.client = None
        self.lock = threading.Lock()

    def get_client(self):
        with self.lock:
            if self.client is None:
                self.client = build_client(self.org.settings, on_event=self.metrics)
            return self.client


class _ThreadedOrgsFn(beam.DoFn):
    """Runs ``work(run, emit)`` for each org in threads; yields pages, then per-org records, in this thread.

    Beam counters only count in the DoFn's own thread, so the threads hand pages over a queue; the
    clients count their requests as they happen for the local endpoint, and for Beam once they are done.
    """

    lanes = 1

    def __init__(self, orgs):
        self.orgs = list(orgs)

    def work(self, run: _OrgRun, lane: int, emit) -> None:
        raise NotImplementedError

    def finished(self, run: _OrgRun):
        """Extra outputs once an org finished without error."""
        return ()

    def process(self, _):
        pages = queue.Queue(maxsize=_QUEUE_PAGES)
        metrics = ApiMetrics()
        runs = [_OrgRun(org, metrics) for org in self.orgs]
        threads = []

        def lane(run: _OrgRun, number: int) -> None:
            try:
                self.work(run, number, lambda item: pages.put((run, item)))
            except Exception as exc:  # noqa: BLE001 - an org's failure stops that org only
                with run.lock:
                    run.error = run.error or error_line(exc)
            finally:
                pages.put((run, _DONE))

        for run in runs:
            for number in range(self.lanes):
                thread = threading.Thread(target=lane, args=(run, number), daemon=True,
                                          name=f"okta-{run.org.host}-{number}")
                thread.start()
                threads.append(thread)
        orgs_failed = counter("okta_orgs_failed")
        running = len(threads)
        while running:
            run, item = pages.get()
            if item is _DONE:
                running -= 1
                continue
            yield item
        for thread in threads:
            thread.join()
        for run in runs:
            if run.client is not None:
                metrics.count_for_beam(run.client.stats)  # counted in the org's threads, where Beam does not
            if run.error is None:
                yield from self.finished(run)
            else:
                orgs_failed.inc()
            yield beam.pvalue.TaggedOutput(ORG_REPORTS, {
                "kind": "org", "org": run.org.host, "status": "ok" if run.error is None else "failed",
                "error": run.error})


class _FetchOrgSlicesFn(_ThreadedOrgsFn):
    lanes = LANES_PER_ORG

    def __init__(self, orgs, slices: list[tuple[str, str]]):
        super().__init__(orgs)
        self.slices = slices

    def process(self, element):
        self._todo = {org.host: list(self.slices) for org in self.orgs}  # (org, slice) work items
        self._todo_lock = threading.Lock()
        yield from super().process(element)

    def work(self, run: _OrgRun, lane: int, emit) -> None:
        client = run.get_client()
        settings = run.org.settings
        while run.error is None:
            with self._todo_lock:
                todo = self._todo[run.org.host]
                if not todo:
                    return
                pending = [todo.pop(0)]
            self._read_slice(client, settings, pending, run, emit)

    @staticmethod
    def _read_slice(client, settings, pending, run, emit) -> None:
        for batch in slice_pages(client, settings, pending.pop(0)):
            emit(batch)
            if run.error is not None:  # another lane of this org failed: stop reading it
                return


class ReadOrgsRange(beam.PTransform):
    """[since, until) of every org -> ``RawBatch`` pages (main) and per-org reports (``ORG_REPORTS``)."""

    def __init__(self, orgs, since: _dt.datetime, until: _dt.datetime, slice_length: _dt.timedelta):
        super().__init__()
        self.orgs = list(orgs)
        self.slices = list(time_slices(since, until, slice_length))

    def expand(self, pbegin):
        return (
            pbegin
            | "Start" >> beam.Create([None])
            | "FetchOrgSlices" >> beam.ParDo(_FetchOrgSlicesFn(self.orgs, self.slices))
            .with_output_types(RawBatch).with_outputs(ORG_REPORTS, main="pages")
        )


class _PollOrgsFn(_ThreadedOrgsFn):
    def __init__(self, orgs, lookback: _dt.timedelta, run_id: str):
        super().__init__(orgs)
        self.lookback, self.run_id = lookback, run_id

    def work(self, run: _OrgRun, lane: int, emit) -> None:
        client = run.get_client()
        settings = run.org.settings
        url = starting_url(client, settings, run.org.state, self.lookback)
        run.next_url = url
        for number, page in enumerate(client.polling_pages(url)):
            if page.events:
                emit(RawBatch(page.url, "page", [number + 1], [page.body], org=settings.org))
            run.next_url = page.next_url or run.next_url

    def finished(self, run: _OrgRun):
        settings = run.org.settings
        yield beam.pvalue.TaggedOutput(CURSOR, (run.org.state, okta_state.CursorState(
            settings.org_url, settings.filter, run.next_url, run_id=self.run_id)))


class ReadOrgsTail(beam.PTransform):
    """Every org's polling chain from its cursor to caught up: pages, ``(state uri, cursor)`` and reports."""

    def __init__(self, orgs, lookback: _dt.timedelta, run_id: str):
        super().__init__()
        self.orgs, self.lookback, self.run_id = list(orgs), lookback, run_id

    def expand(self, pbegin):
        return (
            pbegin
            | "Start" >> beam.Create([None])
            | "PollOrgsUntilCaughtUp" >> beam.ParDo(_PollOrgsFn(self.orgs, self.lookback, self.run_id))
            .with_output_types(RawBatch).with_outputs(CURSOR, ORG_REPORTS, main="pages")
        )
