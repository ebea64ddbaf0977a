"""One S3 and one Cloud Storage client per process, built from the run's storage options (no server needed)."""

from __future__ import annotations

import argparse

from storage import clients, fs

SECRET = "wJalrXUtnFEMI-not-a-real-key"
FLAGS = ["--s3_endpoint_url=http://127.0.0.1:9", "--s3_access_key_id=key", f"--s3_secret_access_key={SECRET}",
         "--s3_region_name=eu-west-1"]


def test_the_s3_flags_are_the_ones_beam_declares():
    from apache_beam.options.pipeline_options import S3Options

    parser = argparse.ArgumentParser()
    S3Options._add_argparse_args(parser)  # noqa: SLF001 - Beam's only list of its S3 flags
    beams = {o[2:]: a.const is True for a in parser._actions for o in a.option_strings if o.startswith("--s3")}  # noqa: SLF001
    assert dict(clients.S3_FLAGS) == beams


def test_one_s3_client_per_process_until_the_options_change():
    try:
        fs.configure(FLAGS)
        first = clients.s3_client()
        assert clients.s3_client() is first and clients.clients_built()["s3"] == 1
        assert first.meta.endpoint_url == "http://127.0.0.1:9" and first.meta.region_name == "eu-west-1"
        fs.configure(list(FLAGS))  # the same options: the same client
        assert clients.s3_client() is first
        fs.configure(FLAGS[:1])
        assert clients.s3_client() is not first
    finally:
        fs.configure([])


def test_pipeline_options_configure_it_too_and_the_secret_is_never_shown():
    from apache_beam.options.pipeline_options import PipelineOptions

    try:
        fs.configure(PipelineOptions(FLAGS + ["--runner=FnApiRunner"]))
        assert fs.s3_settings() == {"endpoint": "http://127.0.0.1:9", "access_key_id": "key",
                                    "secret_access_key": SECRET, "region": "eu-west-1"}
        assert SECRET not in repr(clients.s3_options()) and SECRET not in str(clients.s3_options())
    finally:
        fs.configure([])
