"""Read many Okta orgs in one batch run (``--orgs``): one reader thread (or a few) per org, each org isolated.

- :class:`ReadOrgsRange` (backfills): every org's ``[since, until)`` cut into slices; the work items are
  keyed by ``(org, slice)``, and each org's slices are read by that org's own threads through that
  org's own rate governor (:func:`sources.okta_config.shared_governor`), so one org's pacing or 429s
  never hold a thread another org needs.
- :class:`ReadOrgsTail` (incremental runs): each org's polling chain from its own cursor file to
  caught up; each org's new cursor goes to the ``CURSOR`` output, stored only after the commit
  (:class:`sources.okta.StoreCursor`).

Isolation: an org whose credential is refused (401/403), whose URL is wrong or that is down stops
only itself. Its error goes to the ``ORG_REPORTS`` output (one record per org: ``{"kind": "org",
"org", "status": "ok" | "failed", "error"}``), its cursor is not stored, and the others go on. The
pages it had already delivered are staged like any others, but the commit withholds them (the
reports are its side input, :class:`sinks.lake.WriteLake`): nothing of a failed org is committed,
and the rerun reads it whole.

Both run as one element with threads inside: Beam's local runner hands a stage's elements to its
workers in bundles, and a bundle holding two orgs would read them one after the other.
"""

from __future__ import annotations

import datetime as _dt
import queue
import threading

import apache_beam as beam

from sources import okta_state
from sources.okta import split_after, time_slices
from sources.okta_config import build_client
from sources.okta_polling import ApiMetrics, starting_url
from transforms import coders  # noqa: F401  (registers the batch coders)
from transforms.metrics import counter
from transforms.records import RawBatch

CURSOR = "cursor"
ORG_REPORTS = "org_reports"
LANES_PER_ORG = 2  # threads per org in a backfill: enough to keep one org's budget busy
_QUEUE_PAGES = 16  # pages waiting to be handed on, over all orgs (bounds memory)
_DONE = object()


class OrgFailed(Exception):
    """An org's source stopped (raised inside its threads)."""


def error_line(exc: BaseException) -> str:
    """One line naming the error (the client's messages name the request, never a credential)."""
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text[:300]}"


class _OrgRun:
    """One org's reading: its client (built in its thread), its failure, its delivered pages."""

    def __init__(self, org):
        self.org = org
        self.error: str | None = None
        self.next_url: str | None = None  # the polling chain's last next link (incremental runs)
        self.client = None
        self.lock = threading.Lock()

    def get_client(self):
        with self.lock:
            if self.client is None:
                self.client = build_client(self.org.settings)
            return self.client


class _ThreadedOrgsFn(beam.DoFn):
    """Runs ``work(run, emit)`` for each org in threads; yields pages, then per-org records, in this thread.

    Beam counters only count in the DoFn's own thread, so the threads hand pages over a queue.
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
        runs = [_OrgRun(org) for org in self.orgs]
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
        pages_read = ApiMetrics().pages
        orgs_failed = counter("okta_orgs_failed")
        running = len(threads)
        while running:
            run, item = pages.get()
            if item is _DONE:
                running -= 1
                continue
            pages_read.inc()
            yield item
        for thread in threads:
            thread.join()
        for run in runs:
            if run.client is not None:
                ApiMetrics().update(run.client)  # retries and 429s of this org's client
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
        from okta_client.errors import OktaApiError, QueryTimeout

        while pending and run.error is None:
            since, until = pending.pop(0)
            last_published = None
            try:
                for number, page in enumerate(client.bounded_pages(
                        since, until, filter=settings.filter or None, limit=settings.page_limit)):
                    if page.events:
                        last_published = page.events[-1].get("published")
                        emit(RawBatch(page.url, "page", [number + 1], [page.body], org=settings.org))
                    if run.error is not None:  # another lane of this org failed: stop reading it
                        return
            except QueryTimeout:
                halves = split_after(since, until, last_published)
                if halves is None:
                    raise OktaApiError("GET", f"{settings.org_url}/api/v1/logs", 500, "E0000009",
                                       f"Okta timed out even on the slice {since} .. {until}") from None
                pending[:0] = halves


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
