"""The run's command line: every flag, once, declared by the component it belongs to.

:class:`LakeOptions` is Beam's options class for the pipeline: it declares the run's own group (which
source, the run's name, progress lines) and asks each component for its group: the lake, decoding,
files, the Okta API, Pub/Sub, BigQuery, Iceberg, streaming, monitoring. Checking the values and
turning them into settings is :mod:`pipeline.config`'s job (each component checks its own). The
docs' option reference and the Flex Template's ``metadata.json`` are generated from this class.
"""

from __future__ import annotations

import argparse
import difflib

from apache_beam.options.pipeline_options import PipelineOptions

from common.flags import bool_flag
from pipeline import monitoring
from sinks.bigquery import settings as bigquery_settings
from sinks.iceberg import settings as iceberg_settings
from sinks.lake import settings as lake_settings
from sources.files import settings as file_settings
from sources.okta import settings as okta_settings
from sources.pubsub import settings as pubsub_settings
from streaming import settings as stream_settings
from transforms import settings as decode_settings

SOURCES = ("file", "okta", "pubsub")
#: What ``--run_kind`` may name besides the run's mode: a repair is a backfill that an audit started.
RUN_KINDS = ("repair",)


def add_run_flags(parser) -> None:
    group = parser.add_argument_group("The run")
    group.add_argument(
        "--source", choices=SOURCES, default="file",
        help="Where events come from: file (replay exported System Log files), okta (the System Log "
             "API: a --since/--until backfill, an incremental run from --state, or with --streaming a "
             "continuous tail) or pubsub (a Pub/Sub subscription, with --streaming).")
    group.add_argument(
        "--run_id", default=None,
        help="Name of this run in file names, the dead-letter folder and OUTPUT/_runs/ "
             "(default: UTC start time plus a random suffix).")
    group.add_argument(
        "--run_kind", choices=RUN_KINDS, default=None,
        help="What the run manifest records as this run's kind (run_kind): by default its mode (file, backfill, "
             "incremental); repair marks a backfill that re-reads the hours an audit found events missing in "
             "(okta-personal-lake audit --repair starts those).")
    group.add_argument(
        "--progress_interval", type=float, default=10.0,
        help="Seconds between progress lines on stderr in local runs (0 turns them off).")
    bool_flag(group, "--quiet", False, "No progress lines; only errors and the summary.")
    bool_flag(group, "--verbose", False,
              "Also show Beam's own log lines (warnings, worker tracebacks); by default a failed run "
              "prints one line naming the cause.")


#: Every group, in the order ``--help`` and the docs show them.
GROUPS = (add_run_flags, lake_settings.add_flags, decode_settings.add_flags, file_settings.add_flags,
          okta_settings.add_flags, pubsub_settings.add_flags, stream_settings.add_flags,
          bigquery_settings.add_flags, iceberg_settings.add_flags, monitoring.add_flags)


class LakeOptions(PipelineOptions):
    """Options of the Okta Personal lake pipeline (Beam's own options also apply)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        for add_group in GROUPS:
            add_group(parser)


def declared(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """A plain parser holding every pipeline flag (for ``--help`` and the generated docs)."""
    parser = parser or argparse.ArgumentParser(add_help=False)
    LakeOptions._add_argparse_args(parser)  # noqa: SLF001 - Beam's hook for declaring an options class
    return parser


class _EveryFlag(argparse.ArgumentParser):
    """Every flag of every options class (Beam's and ours), to find the ones nobody declares."""

    def add_value_provider_argument(self, *args, **kwargs):  # how Beam's options declare templatable flags
        self.add_argument(*args, **kwargs)

    def error(self, message):
        if not message.startswith("ambiguous option: "):  # a prefix of two flags: reported as unknown instead
            super().error(message)


def unknown_flags(argv: list[str]) -> list[str]:
    """Flags no Beam or pipeline option knows, each with a suggestion when one is close."""
    parser = _EveryFlag(allow_abbrev=False)
    seen = {}
    for cls in PipelineOptions.__subclasses__():
        seen.setdefault(str(cls), cls)
    for cls in seen.values():
        cls._add_argparse_args(parser)  # noqa: SLF001 - Beam's hook for declaring an options class
    _, unknown = parser.parse_known_args(argv)
    known = [o for action in parser._actions for o in action.option_strings]  # noqa: SLF001
    messages = []
    for arg in unknown:
        name = arg.split("=", 1)[0]
        if not name.startswith("-"):
            messages.append(f"unexpected argument {arg!r}")
            continue
        close = difflib.get_close_matches(name, known, n=1)
        messages.append(f"unknown option {name}" + (f" (did you mean {close[0]}?)" if close else ""))
    return messages
