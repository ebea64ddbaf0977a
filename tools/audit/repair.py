"""``--repair``: the missing events committed through the normal path, a backfill of exactly the hours they are in.

Per org, each run of consecutive hours with missing events is one backfill run
(``python -m pipeline --source=okta --since=H --until=H'``) with the audit's own options: the same lake,
dead letters, selection, Okta credential and rate share, BigQuery table and Iceberg table. So the events
take the same decode, the same dead letters and the same insert-if-absent commit as any run (what the
lake holds already is not written again), and BigQuery and Iceberg follow the lake as after any run. The
run records ``run_kind: repair`` in its manifest, and its id names the audit
(``<audit_id>-repair-<n>``). An org of an orgs file is repaired alone, from a one-org orgs file holding its
entry (credential references only), written in a private temporary folder.

The run itself comes from the caller (``runner(argv) -> exit code``): the tools never import the run's
wiring (``okta-personal-lake audit`` hands over ``pipeline``'s entry; :mod:`tools.cli`).
"""

from __future__ import annotations

import json
import os
import tempfile

from common.durations import rfc3339
from tools.audit.hours import blocks


def repair_argv(settings, since, until, run_id: str, org_flags: list[str]) -> list[str]:
    """The backfill's command line (``python -m pipeline`` options)."""
    return ["--source=okta", *org_flags, *settings.repair_flags, *settings.storage_flags,
            f"--since={rfc3339(since)}", f"--until={rfc3339(until)}", "--run_kind=repair", f"--run_id={run_id}",
            "--quiet"]


def repair_org(settings, org, hours, runner, first: int = 1) -> list[dict]:
    """Backfill ``hours`` (with missing events) of ``org``; one run per block of consecutive hours.

    Returns ``[{"run_id", "since", "until", "exit_code"}]``; run ids are numbered from ``first``.
    """
    runs = []
    with tempfile.TemporaryDirectory(prefix="okta-audit-repair-") as folder:
        org_flags = []
        if settings.okta.orgs_file:
            from sources.okta.orgs import entry_of

            entry = entry_of(org)
            entry.pop("state", None)  # a backfill stores no cursor
            path = os.path.join(folder, "org.json")
            with open(path, "w", encoding="utf-8") as handle:
                json.dump({"orgs": [entry]}, handle)
            org_flags = [f"--orgs={path}"]
        for number, (since, until) in enumerate(blocks(hours), start=first):
            run_id = f"{settings.audit_id}-repair-{number}"
            code = runner(repair_argv(settings, since, until, run_id, org_flags))
            runs.append({"run_id": run_id, "since": rfc3339(since), "until": rfc3339(until), "exit_code": code})
    return runs
