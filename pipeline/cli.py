"""The command line: ``python -m pipeline [options]`` (and ``okta-personal-lake run [options]``).

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
import logging
import re
import sys

from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from common import logs
from pipeline import batch, monitoring, streaming
from pipeline import runner as local_runner
from pipeline.config import RunConfig, resolve
from pipeline.failures import RunFailed, record_failure
from pipeline.options import LakeOptions, declared, unknown_flags
from sinks.iceberg import beam as iceberg_output
from storage import fs

# Google Cloud's own rules: a project id is 6-30 lowercase letters, digits and hyphens (optionally
# "domain.com:" in front); a bucket name is 3-63 lowercase letters, digits, -, _ and . .
PROJECT_ID = re.compile(r"(?:[a-z][-a-z0-9.]*[a-z0-9]:)?[a-z][-a-z0-9]{4,28}[a-z0-9]")
BUCKET = re.compile(r"[a-z0-9][-_a-z0-9.]{1,61}[a-z0-9]")


def launch_problems(pipeline_options: PipelineOptions, config: RunConfig) -> list[str]:
    """What Beam or Dataflow would refuse late (a traceback, or a ~110 s hang), checked before anything starts."""
    problems = []
    cloud = pipeline_options.view_as(GoogleCloudOptions)
    if cloud.project is not None and not PROJECT_ID.fullmatch(cloud.project):
        problems.append(f"--project {cloud.project!r} is not a Google Cloud project id (6 to 30 lowercase "
                        "letters, digits and hyphens, starting with a letter)")
    state = config.okta.state if config.okta else None
    for flag, value in (("--temp_location", cloud.temp_location), ("--staging_location", cloud.staging_location),
                        ("--output", config.lake.root), ("--dead_letter", config.lake.dead_letter),
                        ("--state", state), *(("--input", p) for p in config.inputs)):
        if value and value.startswith("gs://"):
            bucket = value[len("gs://"):].split("/", 1)[0]
            if not BUCKET.fullmatch(bucket):
                problems.append(f"{flag} {value!r}: {bucket!r} is not a Cloud Storage bucket name (3 to 63 "
                                "lowercase letters, digits, -, _ and ., starting and ending with a letter or digit)")
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
    declared(parser).print_help()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--help" in argv or "-h" in argv:
        print_help()
        return 0
    problems = unknown_flags(argv)
    try:
        pipeline_options = PipelineOptions(argv)
        options = pipeline_options.view_as(LakeOptions)
    except (argparse.ArgumentError, SystemExit) as exc:
        if isinstance(exc, SystemExit) and exc.code == 0:  # --help
            return 0
        return 2
    with logs.formatted(options.log_format, options.run_id or "") as log_context:
        return checked_run(argv, pipeline_options, problems, log_context)


def checked_run(argv: list[str], pipeline_options: PipelineOptions, problems: list[str],
                log_context: logs.RunContext) -> int:
    """Resolve the options (every problem reported, exit 2), the launch checks, then the run."""
    config, found = resolve(pipeline_options, local=local_runner.is_local(pipeline_options),
                            on_dataflow=local_runner.on_dataflow(pipeline_options))
    problems += found
    if not problems:
        problems += launch_problems(pipeline_options, config)
    if not problems and config.files:
        fs.configure(pipeline_options)
        problems += unmatched_inputs(config.inputs)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        print("Run `python -m pipeline --help` for every option.", file=sys.stderr)
        return 2

    # Beam logs a worker failure with its whole traceback; we print the cause as one line instead.
    logging.getLogger("apache_beam").setLevel(logging.WARNING if config.verbose else logging.CRITICAL)
    local_runner.choose_runner(pipeline_options, argv, streaming=config.streaming, source=config.source)
    fs.configure(pipeline_options)
    if (reason := iceberg_output.preflight(config.iceberg)) is not None:
        print(f"error: {reason} (nothing was read or written)", file=sys.stderr)
        return 1
    log_context.run_id = config.run_id
    orgs = config.okta.orgs if config.okta else ()
    try:
        with monitoring.serving(config.monitoring, config.streaming, config.local, monitoring.org_label(orgs)):
            return (streaming.run if config.streaming else batch.run)(pipeline_options, config)
    except RunFailed as failed:
        print(f"error: {failed}", file=sys.stderr, flush=True)
        record_failure(config, failed)  # LAKE/_runs/<run_id>.failed.json, for the coverage report
        return failed.exit_code
