"""``okta-personal-lake audit``: is every event Okta holds in the lake? Per org, closed hour and event type.

The coverage report proves which time spans the runs covered; the audit proves what Okta holds for those
hours is in the lake. For each org (``--okta_org_url`` or ``--orgs``) and each whole UTC hour of
``[--since, --until)`` that ended ``--settle`` ago (default 1h), it asks Okta for the hour's selected events
with a bounded request (the org's filter pushed down, its rate governor and ``--okta_rate_share``) and
compares their uuids with the lake's for the same org, hour and selection (and, with ``--iceberg_table``,
the table's): present, missing, dead-lettered (refused by the pipeline, with its reason), unexpected
(in the lake, not in Okta: reported, never deleted). ``--repair`` commits the missing events with a
backfill of exactly those hours (run kind ``repair``) and checks them again. Each org's result is recorded
under ``LAKE/_runs/audits/`` (the coverage report draws it; ``--skip_clean`` skips hours audited clean);
``--metrics_file`` writes Prometheus series.

Exit codes: 0 nothing missing, 1 events missing (or an org or a repair failed for good), 2 bad options,
75 an org could not be audited, or a repair failed, and all may succeed later.

The pieces: :mod:`tools.audit.settings` (options), :mod:`tools.audit.hours` (which hours),
:mod:`tools.audit.okta_read` (Okta's answers), :mod:`tools.audit.held` (what the lake, the table and the
dead letters hold), :mod:`tools.audit.compare` (the verdicts), :mod:`tools.audit.repair` (the repair
backfills), :mod:`tools.audit.auditor` (one audit, start to end), :mod:`tools.audit.text_report`,
:mod:`tools.audit.metrics` (the Prometheus text file) and :mod:`tools.audit.cli`.
"""
