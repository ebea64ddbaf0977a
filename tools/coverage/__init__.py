"""``okta-personal-lake coverage --output=LAKE``: which hours of which Okta org the lake provably holds.

Reads the run records under ``LAKE/_runs`` (:mod:`sinks.lake.records`): the
manifests of committed backfills (their ``[since, until)``), the chain links
that incremental runs and the Okta tail leave when they store a cursor, and
the records of failed runs. Per org it prints the covered spans, the gaps
between them, the cursor-chain breaks and the failed runs, plus events per
hour (DuckDB over the lake's ``published`` and ``okta_org`` columns, local
lakes only; a lake whose rows carry no org shows all its rows under each org).

Exit codes: 0 no gap inside the requested ``[--since, --until)`` (or none
requested), 1 a gap inside it, 2 bad options or no such (local) lake.

The pieces: :mod:`tools.coverage.analysis` (the spans, their union and gaps, read from the
lake's records), :mod:`tools.coverage.text_report` and :mod:`tools.coverage.html_report` (the
report as text, or as one self-contained HTML page with an SVG timeline per org) and
:mod:`tools.coverage.cli` (the command line; ``python -m tools.coverage`` runs it too).
"""
