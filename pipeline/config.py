"""A run's configuration, resolved once at start: every component's settings, checked together.

:func:`resolve` asks each component for its settings (each checks its own flags and reads what it
must, once: the orgs file, a credential file, durations and times) and adds the checks that span
components; it returns a :class:`RunConfig` only when nothing is wrong, else every problem, one line
each. The batch and streaming wiring read only the :class:`RunConfig`; nothing parses an option later.
"""

from __future__ import annotations

import datetime as _dt
import re
import secrets
from dataclasses import dataclass

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, TestOptions

from pipeline import monitoring
from pipeline.monitoring import MonitoringSettings
from pipeline.options import LakeOptions
from sinks.bigquery import settings as bigquery_settings
from sinks.bigquery.settings import BigQueryTarget
from sinks.iceberg import settings as iceberg_settings
from sinks.iceberg.settings import IcebergTarget
from sinks.lake import settings as lake_settings
from sinks.lake.settings import LakeSettings
from sources.files import settings as file_settings
from sources.files.settings import FileSourceSettings
from sources.okta import settings as okta_settings
from sources.okta.settings import OktaSourceSettings
from sources.pubsub import settings as pubsub_settings
from sources.pubsub.settings import PubSubSourceSettings
from streaming import settings as stream_settings
from streaming.settings import PubSubSettings, StreamSettings, TailSettings, WindowSettings
from transforms import settings as decode_settings
from transforms.settings import DecodeSettings

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")


def new_run_id(now: _dt.datetime | None = None) -> str:
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class RunConfig:
    """Everything a run does, as settings: what the wiring reads instead of the options."""

    run_id: str
    started: _dt.datetime
    source: str  # file, okta or pubsub
    streaming: bool
    local: bool  # the pipeline runs in this process (progress lines, the summary, local loops)
    lake: LakeSettings
    decode: DecodeSettings
    monitoring: MonitoringSettings
    files: FileSourceSettings | None = None
    okta: OktaSourceSettings | None = None
    pubsub: PubSubSourceSettings | None = None
    stream: StreamSettings | None = None
    bigquery: BigQueryTarget | None = None
    iceberg: IcebergTarget | None = None
    iceberg_keep_snapshots: int = 60
    progress_interval: float = 0.0  # seconds between progress lines (0: none)
    quiet: bool = False
    verbose: bool = False
    dry_run: bool = False  # a service runner translates the job and submits nothing
    kind: str | None = None  # --run_kind (None: the mode)

    @property
    def mode(self) -> str:
        """``file``, ``backfill`` or ``incremental`` (batch), ``okta-tail`` or ``pubsub`` (streaming)."""
        if self.source in ("file", "pubsub"):
            return self.source
        if self.streaming:
            return "okta-tail"
        return "backfill" if self.okta.backfill else "incremental"

    @property
    def run_kind(self) -> str:
        """What the manifest records as the run's kind: ``--run_kind`` (``repair``), else the mode."""
        return self.kind or self.mode

    @property
    def manifest(self) -> str:
        """The run's manifest file (batch runs)."""
        return self.lake.manifest(self.run_id)

    @property
    def inputs(self) -> list[str]:
        return list(self.files.patterns) if self.files else []

    @property
    def window(self) -> WindowSettings:
        """How the windows of a streaming run are cut, decoded and committed."""
        return WindowSettings(
            length=self.stream.window, dedupe_horizon=self.stream.dedupe_horizon, lake=self.lake,
            decode=self.decode, job=self.run_id, quiet=self.quiet, bigquery=self.bigquery, iceberg=self.iceberg,
            iceberg_keep_snapshots=self.iceberg_keep_snapshots)

    @property
    def tail(self) -> TailSettings:
        return TailSettings(state_uri=self.okta.state, lookback=self.okta.lookback,
                            poll_interval=self.stream.poll_interval, window=self.window)

    @property
    def pubsub_loop(self) -> PubSubSettings:
        return PubSubSettings(subscription=self.pubsub.subscription, window=self.window)


def resolve(pipeline_options: PipelineOptions, *, local: bool, on_dataflow: bool = False,
            started: _dt.datetime | None = None) -> tuple[RunConfig | None, list[str]]:
    """``(config, [])``, or ``(None, problems)`` with every problem of the options, one line each.

    Gives the run its id (``--run_id`` or a new one) and writes it back to the options, where Beam's
    display data and a Dataflow job's description show it.
    """
    options = pipeline_options.view_as(LakeOptions)
    streaming = bool(pipeline_options.view_as(StandardOptions).streaming)
    source = options.source
    problems: list[str] = []
    lake = lake_settings.resolve(options, problems)
    decode = decode_settings.resolve(options, problems, source=source)
    files = file_settings.resolve(options, problems, source=source)
    stream = stream_settings.resolve(options, problems, streaming=streaming)
    pubsub = pubsub_settings.resolve(options, problems, source=source, streaming=streaming)
    iceberg = iceberg_settings.resolve(options, problems, lake=lake.root if lake else None, on_dataflow=on_dataflow)
    okta = None
    if source == "okta":
        okta = okta_settings.resolve(options, problems, streaming=streaming,
                                     iceberg=bool(options.iceberg_table), local=local)
    bigquery = bigquery_settings.resolve(options, problems, raw_event=options.raw_event)
    watched = monitoring.resolve(options, problems, window=stream.window if stream else None)
    problems += _across_components(options, streaming)
    if problems:
        return None, problems
    started = started or _dt.datetime.now(_dt.timezone.utc)
    options.run_id = options.run_id or new_run_id(started)
    return RunConfig(
        run_id=options.run_id, started=started, source=source, streaming=streaming, local=local, lake=lake,
        decode=decode, monitoring=watched, files=files, okta=okta, pubsub=pubsub, stream=stream,
        bigquery=bigquery, iceberg=iceberg, iceberg_keep_snapshots=options.iceberg_keep_snapshots,
        # Workers of a service log elsewhere; Beam's own monitoring shows progress there.
        progress_interval=0.0 if options.quiet or not local else options.progress_interval,
        quiet=options.quiet, verbose=options.verbose,
        dry_run=bool(pipeline_options.view_as(TestOptions).dry_run), kind=options.run_kind), []


def _across_components(options, streaming: bool) -> list[str]:
    """The checks no one component can make alone."""
    problems = []
    if streaming and options.source == "file":
        problems.append("--streaming needs --source=okta (tail the System Log) or --source=pubsub")
    if streaming and options.source == "okta" and not options.state and not (options.iceberg_table
                                                                              and not options.orgs):
        problems.append("--streaming with --source=okta needs --state (or --iceberg_table, whose snapshots record "
                        "the cursor): the cursor is stored there after each committed window, so a restart "
                        "resumes without loss")
    if options.progress_interval < 0:
        problems.append("--progress_interval must be 0 (off) or a number of seconds")
    if options.run_kind == "repair" and (streaming or options.source != "okta" or not options.since):
        problems.append("--run_kind=repair is for a backfill of the System Log (--source=okta --since --until), "
                        "as okta-personal-lake audit --repair starts it")
    if options.run_id is not None and not _RUN_ID.fullmatch(options.run_id):
        problems.append("--run_id may only use letters, digits, '-', '_' and '.'")
    return problems
