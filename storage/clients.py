"""One Google Cloud Storage client and one S3 client per process, configured from the run's storage options.

A run hands its options over once (:func:`configure`: Beam's ``PipelineOptions``, or a tool's
``--s3_*`` flags as a list); every ``gs://`` and ``s3://`` operation of the process then goes
through the same two clients, built on first use (building a boto3 client costs ~0.1 s of CPU:
one per file operation made an ``s3://`` lake 50x slower than local disk). Both clients are
thread-safe; a forked child builds its own.

The S3 options are the ones Beam declares (``--s3_endpoint_url``, ``--s3_access_key_id``,
``--s3_secret_access_key``, ``--s3_session_token``, ``--s3_region_name``, ``--s3_api_version``,
``--s3_verify``, ``--s3_disable_ssl``): a run passes them once for its lake, its Iceberg
warehouse and Beam's own ``s3://`` reads. On a Beam worker nobody calls :func:`configure`: the
options come from the ones Beam's worker harness gave Beam's filesystems, when this process runs
Beam (it is looked up, never imported: nothing here needs Beam). ``gs://`` goes to
``STORAGE_EMULATOR_HOST`` when it is set (a local stand-in), else to Google with the default
credentials. The secret key is never printed: :class:`S3Settings` hides it from ``repr``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from dataclasses import dataclass, field, fields

#: Beam's S3 options, as ``(flag, is a switch)``: the only storage flags a run or a tool takes.
S3_FLAGS = (("s3_access_key_id", False), ("s3_secret_access_key", False), ("s3_session_token", False),
            ("s3_endpoint_url", False), ("s3_region_name", False), ("s3_api_version", False),
            ("s3_verify", False), ("s3_disable_ssl", True))


@dataclass(frozen=True)
class S3Settings:
    """What the process's S3 client is built from (empty: AWS's defaults: environment, profile, role)."""

    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    region_name: str | None = None
    api_version: str | None = None
    verify: str | None = None
    disable_ssl: bool = False

    @classmethod
    def from_options(cls, values: dict) -> S3Settings:
        """From a ``{flag name: value}`` dict (``s3_endpoint_url``, ...); other keys are ignored."""
        return cls(**{f.name: values.get(f"s3_{f.name}") or (False if f.name == "disable_ssl" else None)
                      for f in fields(cls)})


def parse_s3_flags(flags) -> dict:
    """``{flag name: value}`` of the ``--s3_*`` flags in ``flags`` (other arguments are ignored)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for name, switch in S3_FLAGS:
        parser.add_argument(f"--{name}", action="store_true" if switch else "store")
    values, _ = parser.parse_known_args(list(flags))
    return vars(values)


_lock = threading.Lock()
_s3_settings: S3Settings | None = None  # None: never configured in this process
_clients: dict = {}  # "s3" / "gs" -> (pid, what it was built from, client)


def configure(options) -> None:
    """Use a run's storage options in this process: Beam's ``PipelineOptions`` (anything with
    ``get_all_options()``), or the ``--s3_*`` flags as a list. The next operation builds new clients."""
    if hasattr(options, "get_all_options"):
        values = options.get_all_options(retain_unknown_options=True)
    else:
        values = parse_s3_flags(options)
    settings = S3Settings.from_options(values)
    global _s3_settings
    with _lock:
        _s3_settings = settings


def s3_options() -> S3Settings:
    """This process's S3 settings: what :func:`configure` got, else what a Beam worker was given, else none."""
    global _s3_settings
    with _lock:
        if _s3_settings is None:
            _s3_settings = _from_beam_worker()
        return _s3_settings


def _from_beam_worker() -> S3Settings:
    filesystems = sys.modules.get("apache_beam.io.filesystems")
    options = getattr(getattr(filesystems, "FileSystems", None), "_pipeline_options", None)
    if options is None or not hasattr(options, "get_all_options"):
        return S3Settings()
    return S3Settings.from_options(options.get_all_options(retain_unknown_options=True))


def s3_settings() -> dict[str, str]:
    """The S3 settings other clients of the run take (the Iceberg FileIO): ``endpoint``, ``access_key_id``,
    ``secret_access_key``, ``session_token``, ``region`` when given; empty when none were."""
    s3 = s3_options()
    values = {"endpoint": s3.endpoint_url, "access_key_id": s3.access_key_id,
              "secret_access_key": s3.secret_access_key, "session_token": s3.session_token,
              "region": s3.region_name}
    return {k: v for k, v in values.items() if v}


def gcs_emulator_host() -> str | None:
    """``STORAGE_EMULATOR_HOST`` (``http://127.0.0.1:P``) when ``gs://`` goes to a local stand-in."""
    return os.environ.get("STORAGE_EMULATOR_HOST") or None


def s3_client():
    """The process's boto3 S3 client (built on first use, again only when the options change)."""
    return _client("s3", s3_options(), _new_s3_client)


def gcs_client():
    """The process's google-cloud-storage client (built on first use, again only if ``STORAGE_EMULATOR_HOST``
    changes)."""
    return _client("gs", gcs_emulator_host(), _new_gcs_client)


def clients_built() -> dict[str, int]:
    """How many clients this process holds, per scheme (for the tests and the benchmark)."""
    return {name: 1 for name, (pid, _, _) in _clients.items() if pid == os.getpid()}


def _client(name: str, source, build):
    held = _clients.get(name)
    if held is not None and held[:2] == (os.getpid(), source):
        return held[2]
    with _lock:
        held = _clients.get(name)
        if held is None or held[:2] != (os.getpid(), source):
            held = _clients[name] = (os.getpid(), source, build(source))
        return held[2]


def _new_s3_client(s3: S3Settings):
    import boto3
    from botocore.config import Config

    verify = s3.verify
    if isinstance(verify, str) and verify.lower() in ("false", "0", "no"):
        verify = False
    region = s3.region_name or ("us-east-1" if s3.endpoint_url else None)
    return boto3.session.Session().client(
        "s3", endpoint_url=s3.endpoint_url, region_name=region, api_version=s3.api_version,
        use_ssl=not s3.disable_ssl, verify=verify, aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=s3.secret_access_key, aws_session_token=s3.session_token,
        config=Config(retries={"mode": "standard", "max_attempts": 8}, max_pool_connections=32))


def _new_gcs_client(_emulator_host: str | None):
    from google.cloud import storage

    # No project: object operations need none (a stand-in gets anonymous credentials, Google the default ones).
    return storage.Client(project=None)
