"""The Iceberg FileIO reaches object stores with the options the Hive lake uses (no servers here)."""

from __future__ import annotations

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from sinks.iceberg.catalog import file_io_properties, load_catalog
from sinks.iceberg.settings import IcebergTarget
from storage import fs


@pytest.fixture
def beam_options():
    """Configure this process's storage from Beam options, as a run does (none again afterwards)."""

    def set_options(*args):
        fs.configure(PipelineOptions(list(args)))

    yield set_options
    fs.configure([])


def test_beam_s3_options_become_the_fileio_s3_properties(beam_options, monkeypatch):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    beam_options("--s3_endpoint_url=http://127.0.0.1:9000", "--s3_access_key_id=key",
                 "--s3_secret_access_key=secret", "--s3_region_name=eu-west-1")
    assert file_io_properties() == {"s3.endpoint": "http://127.0.0.1:9000", "s3.access-key-id": "key",
                                    "s3.secret-access-key": "secret", "s3.region": "eu-west-1"}
    beam_options("--s3_endpoint_url=http://127.0.0.1:9000")  # a local endpoint never asks AWS for the region
    assert file_io_properties() == {"s3.endpoint": "http://127.0.0.1:9000", "s3.region": "us-east-1"}
    beam_options()
    assert file_io_properties() == {}


def test_the_gcs_emulator_host_becomes_the_fileio_gcs_endpoint(beam_options, monkeypatch):
    beam_options()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9023")
    properties = file_io_properties()
    assert properties["gcs.service.host"] == "http://127.0.0.1:9023"
    assert properties["gcs.oauth2.token"] and int(properties["gcs.oauth2.token-expires-at"]) > 0


def test_the_catalog_carries_them_and_pyiceberg_variables_win(beam_options, monkeypatch, tmp_path):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    beam_options("--s3_endpoint_url=http://127.0.0.1:9000", "--s3_region_name=eu-west-1")
    monkeypatch.setenv("PYICEBERG_CATALOG__OKTA__S3__REGION", "us-west-2")
    monkeypatch.setenv("PYICEBERG_CATALOG__OKTA__S3__ROLE_ARN", "arn:aws:iam::1:role/lake")
    catalog = load_catalog(IcebergTarget("okta.events", "sqlite", f"sqlite:///{tmp_path}/c.db", "s3://lake/wh"))
    assert catalog.properties["s3.endpoint"] == "http://127.0.0.1:9000"
    assert catalog.properties["s3.region"] == "us-west-2"
    assert catalog.properties["s3.role-arn"] == "arn:aws:iam::1:role/lake"
    assert catalog.properties["warehouse"] == "s3://lake/wh"
