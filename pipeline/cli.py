"""The command line: ``python -m pipeline [options]`` (and the ``okta-personal-lake`` script).

Checks the flags (every problem reported on one line, exit 2, before
anything starts), resolves them into a :class:`~pipeline.config.RunConfig`,
then hands over to :mod:`pipeline.batch` or :mod:`pipeline.streaming`. A
failed run is one line naming the error and whether rerunning as is may
succeed (:mod:`pipeline.failures`).

Exit codes: 0 done, 1 the run failed and a rerun as is would fail the same
way (or its counts do not balance), 2 bad options, 75 (EX_TEMPFAIL) the run
failed and a rerun as is may succeed (Okta or a store unavailable, a decode
process killed).
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import re
import sys

from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions

from pipeline import batch, logs, monitoring, streaming
from pipeline import runner as local_runner
from pipeline.config import resolve
from pipeline.failures import RunFailed, record_failure
from pipeline.options import LakeOptions, input_patterns, validate
from sinks.iceberg import beam as iceberg_output

# Google Cloud's own rules: a project id is 6-30 lowercase letters, digits and hyphens (optionally
# "domain.com:" in front); a bucket name is 3-63 lowercase letters, digits, -, _ and . .
PROJECT_ID = re.compile(r"(?:[a-z][-a-z0-9.]*[a-z0-9]:)?[a-z][-a-z0-9]{4,28}[a-z0-9]")
BUCKET = re.compile(r"[a-z0-9][-_a-z0-9.]{1,61}[a-z0-9]")


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
        cls._add_argparse_args(parser)  # pylint: disable=protected-access
    _, unknown = parser.parse_known_args(argv)
    known = [o for action in parser._actions for o in action.option_strings]
    messages = []
    for arg in unknown:
        name = arg.split("=", 1)[0]
        if not name.startswith("-"):
            messages.append(f"unexpected argument {arg!r}")
            continue
        close = difflib.get_close_matches(name, known, n=1)
        messages.append(f"unknown option {name}" + (f" (did you mean {close[0]}?)" if close else ""))
    return messages


def launch_problems(pipeline_options: PipelineOptions, options: LakeOptions) -> list[str]:
    """What Beam or Dataflow would refuse late (a traceback, or a ~110 s hang), checked before anything starts."""
    problems = []
    cloud = pipeline_options.view_as(GoogleCloudOptions)
    if cloud.project is not None and not PROJECT_ID.fullmatch(cloud.project):
        problems.append(f"--project {cloud.project!r} is not a Google Cloud project id (6 to 30 lowercase "
                        "letters, digits and hyphens, starting with a letter)")
    for flag, value in (("--temp_location", cloud.temp_location), ("--staging_location", cloud.staging_location),
                        ("--output", options.output), ("--dead_letter", options.dead_letter),
                        ("--state", options.state), *(("--input", p) for p in input_patterns(options))):
        if value and value.startswith("gs://"):
            bucket = value[len("gs://"):].split("/", 1)[0]
            if not BUCKET.fullmatch(bucket):
                problems.append(f"{flag} {value!r}: {bucket!r} is not a Cloud Storage bucket name (3 to 63 "
                                "lowercase letters, digits, -, _ and ., starting and ending with a letter or digit)")
    if options.source == "okta" and options.orgs and not local_runner.is_local(pipeline_options):
        from sources.okta.orgs import OrgsFileError, load_document

        try:
            entries = load_document(options.orgs)
        except OrgsFileError:
            entries = []  # reported by validate
        entries = entries.get("orgs", []) if isinstance(entries, dict) else entries
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and (entry.get("token_env") or entry.get("private_key_env")):
                problems.append(f"--orgs: {entry.get('url')}: token_env / private_key_env name a variable of "
                                "this machine, which the workers of a service runner never see: give "
                                "token_file or private_key_file (a file or Secret Manager name)")
    elif options.source == "okta" and not local_runner.is_local(pipeline_options):
        from sources.okta.connect import PRIVATE_KEY_ENV, TOKEN_ENV

        from_env = (PRIVATE_KEY_ENV if options.okta_client_id and not options.okta_private_key_file
                    else TOKEN_ENV if not options.okta_client_id and not options.okta_token_file else None)
        if from_env and os.environ.get(from_env, "").strip():
            problems.append(f"{from_env} is set on this machine, but the workers of a service runner never see it: "
                            "give --okta_token_file (a file or Secret Manager name the workers can read), or "
                            "--okta_client_id with --okta_private_key_file")
    return problems


def unmatched_inputs(patterns: list[str]) -> list[str]:
    """The --input globs that match no file, each as an error line."""
    from apache_beam.io.filesystems import FileSystems

    problems = []
    for pattern in patterns:
        try:
            found = FileSystems.match([pattern])[0].metadata_list
        except Exception as exc:  # bad scheme, no access, ...
            problems.append(f"--input {pattern!r} cannot be listed: {exc.__class__.__name__}: {exc}")
            continue
        if not found:
            problems.append(f"--input {pattern!r} matched no files")
    return problems


def print_help() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Okta System Log personal.* events -> Hive-partitioned Parquet lake. "
                    "Every Apache Beam pipeline option (--runner, --project, --region, "
                    "--temp_location, --direct_num_workers, ...) is accepted too.")
    LakeOptions._add_argparse_args(parser)  # pylint: disable=protected-access
    parser.print_help()


def fs_options_set(pipeline_options: PipelineOptions) -> None:  # noqa: D103
    """Let Beam's filesystems (S3 endpoint, credentials) see the options in this process too."""
    from apache_beam.io.filesystems import FileSystems

    FileSystems.set_options(pipeline_options)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--help" in argv or "-h" in argv:
        print_help()
        return 0
    problems = unknown_flags(argv)
    try:
        pipeline_options = PipelineOptions(argv)
        options = pipeline_options.view_as(LakeOptions)
        problems += validate(options)
    except (argparse.ArgumentError, SystemExit) as exc:
        if isinstance(exc, SystemExit) and exc.code == 0:  # --help
            return 0
        return 2
    with logs.formatted(options.log_format, options.run_id or "") as log_context:
        return checked_run(argv, pipeline_options, options, problems, log_context)


def checked_run(argv: list[str], pipeline_options: PipelineOptions, options: LakeOptions, problems: list[str],
                log_context: logs.RunContext) -> int:
    """The launch checks, then the run (stderr already in --log_format)."""
    if not problems:
        problems += launch_problems(pipeline_options, options)
    if not problems and options.source == "file":
        fs_options_set(pipeline_options)
        problems += unmatched_inputs(input_patterns(options))
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        print("Run `python -m pipeline --help` for every option.", file=sys.stderr)
        return 2

    # Beam logs a worker failure with its whole traceback; we print the cause as one line instead.
    logging.getLogger("apache_beam").setLevel(logging.WARNING if options.verbose else logging.CRITICAL)
    is_streaming = bool(pipeline_options.view_as(StandardOptions).streaming)
    local_runner.choose_runner(pipeline_options, argv, streaming=is_streaming, source=options.source)
    fs_options_set(pipeline_options)
    if (reason := iceberg_output.preflight(options)) is not None:
        print(f"error: {reason} (nothing was read or written)", file=sys.stderr)
        return 1
    config = resolve(options, local=local_runner.is_local(pipeline_options))
    log_context.run_id = config.run_id
    try:
        with monitoring.serving(options, is_streaming, config.local):
            return (streaming.run if is_streaming else batch.run)(pipeline_options, config)
    except RunFailed as failed:
        print(f"error: {failed}", file=sys.stderr, flush=True)
        record_failure(config, failed)  # LAKE/_runs/<run_id>.failed.json, for python -m tools.coverage
        return failed.exit_code
