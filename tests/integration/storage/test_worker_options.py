"""A Beam worker's storage clients take the options Beam's worker harness was given (a fresh process)."""

from __future__ import annotations

import subprocess
import sys

from tests.support.helpers import REPO

FLAGS = ["--s3_endpoint_url=http://127.0.0.1:9", "--s3_access_key_id=key"]


def test_a_beam_worker_takes_the_options_beam_was_given():
    """On a worker nobody calls configure: the options Beam's harness gave its filesystems are used."""
    code = ("from apache_beam.io.filesystems import FileSystems\n"
            "from apache_beam.options.pipeline_options import PipelineOptions\n"
            f"FileSystems.set_options(PipelineOptions({FLAGS!r}))\n"
            "from storage import fs\n"
            "print(sorted(fs.s3_settings().items()))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[('access_key_id', 'key'), ('endpoint', 'http://127.0.0.1:9')]", done.stderr
