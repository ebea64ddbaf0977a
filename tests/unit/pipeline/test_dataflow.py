"""The pipelines translate into Dataflow jobs, offline: ``--runner=DataflowRunner --dry_run=True``.

A dry run pickles every DoFn, encodes every coder and builds the job request without any network or
credentials. Each test checks the job's type and that every transform runs in the one Python environment
(no cross-language transform that would need Java or an expansion service).
"""

from __future__ import annotations

import datetime as dt
import pickle

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import batch
from pipeline import streaming as streaming_job
from pipeline.config import resolve
from tests.support.okta import TOKEN

DATAFLOW = ["--runner=DataflowRunner", "--dry_run=True", "--project=okta-lake-test", "--region=us-central1",
            "--temp_location=gs://okta-lake-test/tmp", "--staging_location=gs://okta-lake-test/staging"]


@pytest.fixture(autouse=True)
def no_token_in_the_environment(monkeypatch):
    """A Dataflow worker never sees this machine's OKTA_API_TOKEN: runs name a token file (``with_token``)."""
    monkeypatch.delenv("OKTA_API_TOKEN", raising=False)


@pytest.fixture(scope="module")
def token_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("secrets") / "okta-token"
    path.write_text(TOKEN)
    return path


def with_token(args: list[str], token_file) -> list[str]:
    """An Okta run's arguments with ``--okta_token_file`` (unless they name a credential or an orgs file)."""
    named = any(a.startswith(("--okta_token_file", "--okta_client_id", "--orgs")) for a in args)
    return args if "--source=okta" not in args or named else [*args, f"--okta_token_file={token_file}"]


def resolved(options: PipelineOptions):
    """The run's configuration as a Dataflow run resolves it (asserting the options have no problem)."""
    config, problems = resolve(options, local=False, on_dataflow=True,
                               started=dt.datetime(2026, 11, 25, tzinfo=dt.timezone.utc))
    assert problems == []
    return config


def translate(args: list[str], streaming: bool):
    options = PipelineOptions(DATAFLOW + args + [f"--run_id={'job1' if streaming else 'run1'}"])
    config = resolved(options)
    pipeline = beam.Pipeline(options=options)
    (streaming_job.build if streaming else batch.build)(pipeline, config)
    proto = pipeline.to_runner_api()
    result = pipeline.run()
    return result.job, proto


def environments(proto) -> set[str]:
    used = {t.environment_id for t in proto.components.transforms.values() if t.environment_id}
    return {proto.components.environments[e].urn for e in used}


CASES = {
    "batch-files": (["--source=file", "--input=gs://okta-lake-test/exports/*.jsonl.gz",
                     "--output=gs://okta-lake-test/lake"], False, "JOB_TYPE_BATCH"),
    "backfill": (["--source=okta", "--okta_org_url=https://acme.okta.com", "--since=2026-11-20T00:00:00Z",
                  "--until=2026-11-21T00:00:00Z", "--output=gs://okta-lake-test/lake"], False, "JOB_TYPE_BATCH"),
    "incremental": (["--source=okta", "--okta_org_url=https://acme.okta.com",
                     "--state=gs://okta-lake-test/state/cursor.json", "--output=gs://okta-lake-test/lake"],
                    False, "JOB_TYPE_BATCH"),
    "streaming-okta": (["--streaming", "--source=okta", "--okta_org_url=https://acme.okta.com",
                        "--state=gs://okta-lake-test/state/tail.json", "--output=gs://okta-lake-test/lake"],
                       True, "JOB_TYPE_STREAMING"),
    "streaming-pubsub": (["--streaming", "--source=pubsub",
                          "--subscription=projects/okta-lake-test/subscriptions/okta-events",
                          "--id_label=event_uuid", "--timestamp_attribute=published",
                          "--output=gs://okta-lake-test/lake"], True, "JOB_TYPE_STREAMING"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_pipeline_translates_to_a_dataflow_job(case, token_file):
    args, streaming, job_type = CASES[case]
    job, proto = translate(with_token(args, token_file), streaming)
    assert job.proto.type_.name == job_type
    assert len(environments(proto)) == 1, environments(proto)
    text = str(job.options.get_all_options(drop_default=True)) + str(job.proto_pipeline)
    assert TOKEN not in text  # options and the graph travel to Dataflow; credentials never do


def test_the_okta_token_is_not_in_the_job_even_when_read_from_a_file(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("file-secret-00abc")
    job, _ = translate(["--source=okta", "--okta_org_url=https://acme.okta.com", f"--okta_token_file={secret}",
                        "--since=2026-11-20T00:00:00Z", "--until=2026-11-21T00:00:00Z",
                        "--output=gs://okta-lake-test/lake"], False)
    options = str(job.options.get_all_options(drop_default=True))
    assert str(secret) in options and "file-secret-00abc" not in options + str(job.proto_pipeline)
    # What the DoFns carry to the workers: where the secret is, not the secret.
    settings = pickle.dumps(resolved(job.options).okta.org)
    assert str(secret).encode() in settings and b"file-secret-00abc" not in settings


def test_an_iceberg_run_translates_with_one_commit_step_and_no_catalog_credential(monkeypatch, token_file):
    monkeypatch.setenv("ICEBERG_REST_CREDENTIAL", "client:rest-secret-00abc")
    for catalog in (["--iceberg_catalog=sql", "--iceberg_catalog_uri=postgresql://lake@db.internal:5432/okta",
                     "--iceberg_warehouse=gs://okta-lake-test/iceberg"],
                    ["--iceberg_catalog=rest", "--iceberg_catalog_uri=https://biglake.googleapis.com/iceberg/v1"]):
        job, proto = translate(with_token(["--source=okta", "--okta_org_url=https://acme.okta.com",
                                           "--state=gs://okta-lake-test/state/cursor.json",
                                           "--output=gs://okta-lake-test/lake", "--iceberg_table=okta.events",
                                           *catalog], token_file), False)
        names = [t.unique_name for t in proto.components.transforms.values()]
        assert sum(1 for n in names if n.endswith("CommitToIceberg")) == 1
        text = str(job.options.get_all_options(drop_default=True)) + str(job.proto_pipeline)
        assert "rest-secret-00abc" not in text


def fused_stages(proto) -> list[list[str]]:
    """The job's stages as Beam's fuser forms them (fusion never crosses a shuffle, on Dataflow either)."""
    from apache_beam.portability import common_urns
    from apache_beam.runners.portability.fn_api_runner import translations

    known = frozenset(u.urn for u in (common_urns.primitives.GROUP_BY_KEY, common_urns.primitives.IMPULSE,
                                      common_urns.primitives.FLATTEN))
    _, stages = translations.create_and_optimize_stages(proto, translations.standard_optimize_phases(), known)
    return [[t.unique_name for t in stage.transforms] for stage in stages]


def test_a_batch_iceberg_run_writes_data_files_on_many_workers_and_commits_in_one_step():
    from apache_beam.portability.api import beam_runner_api_pb2

    job, _ = translate(["--source=file", "--input=gs://okta-lake-test/exports/*.jsonl.gz",
                        "--output=gs://okta-lake-test/lake", "--iceberg_table=okta.events", "--iceberg_catalog=sql",
                        "--iceberg_catalog_uri=postgresql://lake@db.internal:5432/okta",
                        "--iceberg_warehouse=gs://okta-lake-test/iceberg"], False)
    assert job.proto.type_.name == "JOB_TYPE_BATCH"
    proto = job.proto_pipeline  # what was submitted, not the graph before translation
    stages = fused_stages(proto)

    def stage_of(name: str) -> int:
        [found] = [i for i, stage in enumerate(stages) if name in stage]
        return found

    base, write, commit = stage_of("IcebergBase"), stage_of("WriteIcebergFiles"), stage_of("CommitToIceberg")
    assert len({base, write, commit}) == 3, stages[write]
    # The writes read a shuffle keyed by partition (so the partitions spread over the workers); the commit
    # runs on the base step's one element with all their files as a side input (one element, one worker).
    transforms = proto.components.transforms
    by_name = {t.unique_name: t for t in transforms.values()}
    producer = {pc: t.unique_name for t in transforms.values() for pc in t.outputs.values()}
    [write_input] = by_name["WriteIcebergFiles"].inputs.values()
    assert producer[write_input] == "SpreadIcebergWrites"
    assert by_name["SpreadIcebergWrites"].spec.urn == "beam:transform:group_by_key:v1"
    step = by_name["CommitToIceberg"]
    payload = beam_runner_api_pb2.ParDoPayload.FromString(step.spec.payload)
    side = {producer[step.inputs[tag]] for tag in payload.side_inputs}
    main = {producer[pc] for tag, pc in step.inputs.items() if tag not in payload.side_inputs}
    assert "WriteIcebergFiles" in side and main == {"IcebergBase"}, (side, main)
    assert sum(1 for stage in stages for name in stage if name.endswith("CommitToIceberg")) == 1


@pytest.mark.parametrize("source", ["okta", "pubsub"])
def test_a_streaming_iceberg_job_translates_carrying_only_the_catalog_settings(source, monkeypatch, token_file):
    monkeypatch.setenv("ICEBERG_REST_CREDENTIAL", "client:rest-secret-00abc")
    args = {"okta": ["--source=okta", "--okta_org_url=https://acme.okta.com",
                     "--state=gs://okta-lake-test/state/tail.json"],
            "pubsub": ["--source=pubsub", "--subscription=projects/okta-lake-test/subscriptions/okta-events"]}
    job, proto = translate(with_token(["--streaming", *args[source], "--output=gs://okta-lake-test/lake",
                                       "--iceberg_table=okta.events", "--iceberg_catalog=rest",
                                       "--iceberg_catalog_uri=https://biglake.googleapis.com/iceberg/v1"], token_file),
                           True)
    assert job.proto.type_.name == "JOB_TYPE_STREAMING"
    assert len(environments(proto)) == 1
    text = str(job.options.get_all_options(drop_default=True)) + str(job.proto_pipeline)
    assert "rest-secret-00abc" not in text
    # The workers get the table's settings (plain, picklable values), never an open catalog.
    window = resolved(job.options).window
    assert window.iceberg.table == "okta.events" and window.iceberg.catalog == "rest"
    assert pickle.loads(pickle.dumps(window)) == window
    assert b"rest-secret-00abc" not in pickle.dumps(window)
    if source == "pubsub":  # the window's snapshot is committed by the one per-window step after the lake
        names = [t.unique_name for t in proto.components.transforms.values()]
        assert any(n.endswith("GroupWindow") for n in names) and any(n.endswith("/Report") for n in names)


def test_the_embedded_sqlite_catalog_is_refused_on_dataflow():
    options = PipelineOptions(DATAFLOW + ["--source=file", "--input=gs://okta-lake-test/exports/*.jsonl.gz",
                                          "--output=gs://okta-lake-test/lake", "--iceberg_table=okta.events"])
    assert resolve(options, local=False, on_dataflow=True) == (None, [
        "--iceberg_catalog=sqlite is a file on one machine; on Dataflow use --iceberg_catalog=sql or rest"])


@pytest.mark.parametrize("mode", ["backfill", "incremental", "streaming"])
def test_a_many_org_run_translates_and_carries_no_secret(mode, tmp_path):
    import json

    secrets_ = {"acme": "org-secret-acme-00abc", "beta": "org-secret-beta-00abc"}
    for name, value in secrets_.items():
        (tmp_path / name).write_text(value)
    orgs = tmp_path / "orgs.yaml"
    orgs.write_text(json.dumps([{"url": "https://acme.okta.com", "token_file": str(tmp_path / "acme"),
                                 "rate_share": 0.5},
                                {"url": "https://beta.okta.com", "client_id": "0oa1",
                                 "private_key_file": str(tmp_path / "beta"), "event_types": "personal.user.*"}]))
    window = (["--since=2026-11-20T00:00:00Z", "--until=2026-11-21T00:00:00Z"] if mode == "backfill"
              else ["--state=gs://okta-lake-test/state"])
    streaming = mode == "streaming"
    job, proto = translate(["--source=okta", f"--orgs={orgs}", *window, "--output=gs://okta-lake-test/lake",
                            *(["--streaming"] if streaming else [])], streaming)
    assert job.proto.type_.name == ("JOB_TYPE_STREAMING" if streaming else "JOB_TYPE_BATCH")
    assert len(environments(proto)) == 1
    names = [t.unique_name for t in proto.components.transforms.values()]
    reader = {"backfill": "ReadOrgsRange", "incremental": "ReadOrgsTail", "streaming": "TailOrgs"}[mode]
    assert any(n.startswith(reader) for n in names)
    assert any(n.endswith("StoreCursor") for n in names) == (mode == "incremental")
    text = str(job.options.get_all_options(drop_default=True)) + str(job.proto_pipeline)
    config = resolved(job.options)
    carried = pickle.dumps(config.okta.orgs)
    for value in secrets_.values():
        assert value not in text and value.encode() not in carried
    assert str(tmp_path / "acme").encode() in carried  # where the secret is, read by each worker
    if mode != "backfill":
        assert [o.state for o in config.okta.orgs] == ["gs://okta-lake-test/state/acme.okta.com.json",
                                                      "gs://okta-lake-test/state/beta.okta.com.json"]


def test_a_dataflow_file_run_keeps_the_beam_graph_whatever_decode_processes_says():
    """The local decode processes never reach Dataflow: its workers read the byte ranges of the ordinary graph."""
    args = ["--source=file", "--input=gs://okta-lake-test/exports/*.jsonl", "--output=gs://okta-lake-test/lake",
            "--decode_processes=4"]
    _, proto = translate(args, False)
    labels = {t.unique_name for t in proto.components.transforms.values()}
    assert any(label.startswith("ReadExportedFiles/ReadRanges") for label in labels)
    assert not any("ExportedFilesToRows" in label for label in labels)

    options = PipelineOptions(["--source=file", "--input=/tmp/x.jsonl", "--output=/tmp/lake", "--decode_processes=2",
                               "--run_id=run2"])
    local = beam.Pipeline(options=PipelineOptions([]))
    config, problems = resolve(options, local=True)
    assert problems == []
    batch.build(local, config)
    local_labels = {t.unique_name for t in local.to_runner_api().components.transforms.values()}
    assert "ExportedFilesToRows/DecodeInProcesses" in local_labels
    assert not any(label.startswith("ReadExportedFiles") for label in local_labels)
