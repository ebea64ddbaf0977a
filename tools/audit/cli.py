"""The command line of ``okta-personal-lake audit``: options, the audit, its report on stdout (text or JSON), its
records and metrics file; the exit code says whether anything is missing."""

from __future__ import annotations

import json
import sys

from tools.audit.text_report import render_text


def main(argv: list[str] | None = None, runner=None) -> int:
    """``runner(argv) -> exit code`` runs the pipeline (``python -m pipeline ARGV``) for ``--repair``;
    :mod:`tools.cli` hands it over (the tools never import the run's wiring)."""
    from storage import fs
    from tools.audit.settings import resolve

    argv = sys.argv[1:] if argv is None else list(argv)
    settings, problems = resolve(argv)
    if settings is not None and settings.repair and runner is None:
        problems.append("--repair runs the pipeline: use `okta-personal-lake audit --repair`")
    if not problems:
        fs.configure(list(settings.storage_flags))
        if fs.is_local(settings.lake.root) and not fs.exists(settings.lake.root):
            problems.append(f"--output {settings.lake.root}: no such lake")
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    return audit_and_report(settings, runner)


def audit_and_report(settings, runner) -> int:
    from tools.audit import metrics
    from tools.audit.auditor import audit

    if settings.iceberg is not None and (reason := table_problem(settings.iceberg)) is not None:
        print(f"error: {reason} (nothing was audited)", file=sys.stderr)
        return 1
    from tools.audit.held import LakeChanging

    try:
        result, previous = audit(settings, runner)
    except LakeChanging as exc:
        print(f"error: {exc} (retryable: audit again)", file=sys.stderr)
        return 75
    if settings.metrics_file:
        try:
            metrics.write(settings.metrics_file, result, previous)
        except Exception as exc:  # noqa: BLE001 - the report still goes out; the missing file is the signal
            print(f"warning: could not write --metrics_file {settings.metrics_file}: {exc.__class__.__name__}: "
                  f"{exc}", file=sys.stderr)
    print(json.dumps(result, indent=2) if settings.format == "json" else render_text(result), flush=True)
    return result["exit_code"]


def table_problem(target) -> str | None:
    """Why the Iceberg table cannot be read, or None (the audit reads it; it never creates one)."""
    from sinks.iceberg.table import connect

    try:
        connect(target).load_table(target.table)
    except Exception as exc:  # noqa: BLE001 - a missing table, an unreachable catalog: one line
        text = str(exc).splitlines()[0][:300] if str(exc) else ""
        return f"the Iceberg table {target.describe()} cannot be read: {exc.__class__.__name__}: {text}"
    return None
