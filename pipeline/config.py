"""The options of one run, resolved once: locations, durations, the Okta and streaming settings.

:func:`resolve` turns validated :class:`~pipeline.options.LakeOptions` into a
:class:`RunConfig`; the batch and streaming wiring read only that. Where the
lake, the dead letters and the run manifest are is decided here and nowhere else.
"""

from __future__ import annotations

import datetime as _dt
import secrets
from dataclasses import dataclass

from common.durations import parse_duration, parse_time
from okta_client.urls import normalise_org_url
from pipeline.options import LakeOptions, input_patterns
from sinks.iceberg.settings import target_from_options
from sinks.lake.dead_letters import DEFAULT_DEAD_LETTER_DIR
from sinks.lake.records import RUNS_DIR
from sources.okta.connect import OktaSettings
from storage import fs
from streaming.settings import PubSubSettings, TailSettings, WindowSettings
from transforms.selection import EventTypeSelection


def new_run_id(now: _dt.datetime | None = None) -> str:
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class RunConfig:
    """Everything the wiring needs that is derived from the options (the options stay the source of truth)."""

    options: LakeOptions
    run_id: str
    started: _dt.datetime
    lake: str
    dead_letter: str
    manifest: str  # the run's manifest file (batch runs)
    local: bool  # the pipeline runs in this process (progress lines, the summary, local loops)

    @property
    def source(self) -> str:
        return self.options.source

    @property
    def mode(self) -> str:
        """``file``, ``backfill`` or ``incremental`` (batch), ``okta-tail`` or ``pubsub`` (streaming)."""
        if self.options.source == "file":
            return "file"
        if self.options.source == "pubsub":
            return "pubsub"
        if self.streaming:
            return "okta-tail"
        return "backfill" if self.options.since else "incremental"

    @property
    def streaming(self) -> bool:
        from apache_beam.options.pipeline_options import StandardOptions

        return bool(self.options.view_as(StandardOptions).streaming)

    @property
    def progress_interval(self) -> float:
        # Workers of a service log elsewhere; Beam's own monitoring shows progress there.
        return 0 if self.options.quiet or not self.local else self.options.progress_interval

    @property
    def inputs(self) -> list[str]:
        return input_patterns(self.options)

    def okta(self) -> OktaSettings:
        options = self.options
        selection = EventTypeSelection.parse(options.event_types)
        return OktaSettings(
            org_url=normalise_org_url(options.okta_org_url),
            token_file=options.okta_token_file,
            client_id=options.okta_client_id,
            private_key_file=options.okta_private_key_file,
            key_id=options.okta_key_id,
            scopes=tuple(options.okta_scopes.split()),
            dpop=options.okta_dpop,
            rate_share=options.okta_rate_share,
            page_limit=options.okta_page_limit,
            filter=selection.scim_filter() if options.okta_filter_pushdown else "",
        )

    def orgs(self) -> list:
        """The run's orgs (:class:`sources.okta.orgs.OrgSpec`): those of ``--orgs``, or ``--okta_org_url`` alone."""
        from sources.okta.orgs import load_document, parse_orgs, single_org

        options = self.options
        if not options.orgs:
            return single_org(self.okta(), options.event_types, options.state)
        orgs, problems = parse_orgs(load_document(options.orgs), default_event_types=options.event_types,
                                    default_rate_share=options.okta_rate_share, state_dir=options.state,
                                    page_limit=options.okta_page_limit,
                                    filter_pushdown=options.okta_filter_pushdown)
        if problems:  # validated before the run; the file changed since
            raise ValueError(f"--orgs {options.orgs}: {problems[0]}")
        return orgs

    def since_until(self) -> tuple[_dt.datetime, _dt.datetime]:
        return parse_time(self.options.since, "--since"), parse_time(self.options.until, "--until")

    def slice_length(self) -> _dt.timedelta:
        return parse_duration(self.options.slice, "--slice")

    def lookback(self) -> _dt.timedelta:
        return parse_duration(self.options.lookback, "--lookback")

    def stop_after(self) -> float | None:
        value = self.options.stop_after
        return parse_duration(value, "--stop_after").total_seconds() if value else None

    def bigquery(self):
        if not self.options.bigquery_table:
            return None
        from sinks.bigquery.client import BigQueryTarget

        return BigQueryTarget(self.options.bigquery_table, self.options.raw_event, self.options.bigquery_endpoint)

    def window(self) -> WindowSettings:
        options = self.options
        return WindowSettings(
            length=parse_duration(options.window, "--window").total_seconds(),
            dedupe_horizon=parse_duration(options.dedupe_horizon, "--dedupe_horizon").total_seconds(),
            lake=self.lake, dead_letter=self.dead_letter, job=self.run_id, event_types=options.event_types,
            raw_event=options.raw_event, compression=options.compression,
            max_payload_bytes=options.max_dead_letter_payload_bytes, quiet=options.quiet, bigquery=self.bigquery(),
            okta_org=options.okta_org, iceberg=target_from_options(options),
            iceberg_keep_snapshots=options.iceberg_keep_snapshots)

    def tail(self) -> TailSettings:
        return TailSettings(
            state_uri=self.options.state, lookback=self.lookback(),
            poll_interval=parse_duration(self.options.poll_interval, "--poll_interval").total_seconds(),
            window=self.window())

    def pubsub(self) -> PubSubSettings:
        return PubSubSettings(subscription=self.options.subscription, window=self.window())


def resolve(options: LakeOptions, *, local: bool, started: _dt.datetime | None = None) -> RunConfig:
    """The run's configuration; gives the run an id (``--run_id`` or a new one) and writes it back to the options."""
    started = started or _dt.datetime.now(_dt.timezone.utc)
    run_id = options.run_id or new_run_id(started)
    options.run_id = run_id
    lake = options.output.rstrip("/")
    dead_letter = (options.dead_letter or fs.join(lake, DEFAULT_DEAD_LETTER_DIR)).rstrip("/")
    return RunConfig(options=options, run_id=run_id, started=started, lake=lake, dead_letter=dead_letter,
                     manifest=fs.join(lake, RUNS_DIR, f"{run_id}.json"), local=local)
