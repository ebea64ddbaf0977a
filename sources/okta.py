"""Read the Okta System Log API as ``RawBatch`` elements: one element per page of up to 1000 events.

- :class:`ReadSystemLogRange` (backfills): the range is cut into half-open
  time slices, spread over workers; each slice is read with bounded requests
  until its last page. A 500 ``E0000009`` (Okta's 30 s query timeout) splits
  what is left of the slice in two and reads both halves.
- :class:`ReadSystemLogTail` (scheduled incremental runs): resumes the
  polling chain from the cursor in ``--state`` (or starts ``--lookback``
  back), follows next links until an empty page, and hands the final next
  link on; :class:`StoreCursor` writes it only after the lake is committed,
  so a crash at any point re-reads (and dedupes) instead of losing.

All workers of one process share one rate governor per org; across
processes they pace by Okta's own ``X-Rate-Limit-Remaining``.
"""

from __future__ import annotations

import datetime as _dt

import apache_beam as beam

from okta_client.errors import OktaApiError, QueryTimeout
from sinks import run_records
from sources import okta_state
from sources.okta_config import OktaSettings, build_client
from sources.okta_polling import UTC, ApiMetrics, rfc3339, starting_point
from transforms import coders  # noqa: F401  (registers the batch coders)
from transforms.decode import InvalidEvent, published_datetime
from transforms.metrics import counter
from transforms.records import RawBatch

CURSOR = "cursor"
MIN_SLICE = _dt.timedelta(seconds=1)


def time_slices(since: _dt.datetime, until: _dt.datetime, length: _dt.timedelta):
    """Half-open [start, end) slices covering [since, until) exactly once."""
    start = since
    while start < until:
        end = min(start + length, until)
        yield (rfc3339(start), rfc3339(end))
        start = end


class _FetchSlicesFn(beam.DoFn):
    def __init__(self, settings: OktaSettings):
        self.settings = settings

    def setup(self):
        self._client = build_client(self.settings)
        self._metrics = ApiMetrics()

    def process(self, time_slice):
        pending = [tuple(time_slice)]
        while pending:
            since, until = pending.pop(0)
            last_published = None
            try:
                for number, page in enumerate(self._client.bounded_pages(
                        since, until, filter=self.settings.filter or None, limit=self.settings.page_limit)):
                    self._metrics.pages.inc()
                    self._metrics.update(self._client)
                    if page.events:
                        last_published = page.events[-1].get("published")
                        yield RawBatch(page.url, "page", [number + 1], [page.body], org=self.settings.org)
            except QueryTimeout:
                self._metrics.update(self._client)
                halves = split_after(since, until, last_published)
                if halves is None:
                    raise OktaApiError("GET", f"{self.settings.org_url}/api/v1/logs", 500, "E0000009",
                                       f"Okta timed out even on the slice {since} .. {until}") from None
                self._metrics.splits.inc()
                pending[:0] = halves


def split_after(since: str, until: str, last_published) -> list | None:
    """The unread rest of a slice, in two halves (re-reading the last timestamp seen: dedupe covers it)."""
    start = published_datetime(since)
    if last_published is not None:
        try:
            start = max(start, published_datetime(last_published))
        except InvalidEvent:
            pass
    end = published_datetime(until)
    if end - start <= MIN_SLICE:
        return None
    middle = start + (end - start) / 2
    middle = middle.replace(microsecond=middle.microsecond // 1000 * 1000)
    return [(rfc3339(start), rfc3339(middle)), (rfc3339(middle), rfc3339(end))]


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
        self._client = build_client(self.settings)
        self._metrics = ApiMetrics()

    def process(self, _):
        start = starting_point(self._client, self.settings, self.state_uri, self.lookback, self.iceberg)
        next_url = start.url
        for number, page in enumerate(self._client.polling_pages(start.url)):
            self._metrics.pages.inc()
            self._metrics.update(self._client)
            if page.events:
                yield RawBatch(page.url, "page", [number + 1], [page.body], org=self.settings.org)
            next_url = page.next_url or next_url
        caught_up = rfc3339(_dt.datetime.now(UTC))  # the chain just read its empty page
        yield beam.pvalue.TaggedOutput(CURSOR, okta_state.CursorState(
            self.settings.org_url, self.settings.filter, next_url, run_id=self.run_id,
            caught_up_at=caught_up, started=start.describe()))


class ReadSystemLogTail(beam.PTransform):
    """The polling chain from the stored cursor to 'caught up'; outputs pages and the new cursor.

    ``iceberg``: the run's Iceberg table, whose newest cursor of the org comes before ``state_uri``'s
    (:func:`sources.okta_polling.starting_point`); ``state_uri`` may then be None.
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
        # A many-org run gives (its state file, cursor) per org (sources.okta_many).
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

    With ``lake``, then also the run's chain link ``LAKE/_runs/<run_id>.cursor.json`` (:mod:`sinks.run_records`).
    """

    def __init__(self, state_uri: str, manifest, lake: str = ""):
        super().__init__()
        self.state_uri, self.manifest, self.lake = state_uri, manifest, lake

    def expand(self, cursors):
        return cursors | beam.ParDo(_StoreCursorFn(self.state_uri, self.lake),
                                    beam.pvalue.AsSingleton(self.manifest))
