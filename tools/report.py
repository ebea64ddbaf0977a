"""``okta-personal-lake report LAKE``: what is in a local lake, asked of DuckDB.

Prints rows and distinct events per org, event type and day, read straight from
the Hive-partitioned Parquet files the way the README says to query them
(committed data files only: ``event_date=*/event_type=*/*.parquet``), the
number of dead-letter records, and the schema drift the runs saw (:mod:`tools.drift_report`: each
undocumented path with its first and last sighting). Needs the ``local`` extra (DuckDB).
``python -m tools.report`` runs it too.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

from tools.drift_report import drift_section

# Committed files only: staged files end in .staged and live under _staging/ (sinks/lake/staging.py).
DATA_FILES = "event_date=*/event_type=*/*.parquet"
DEAD_LETTER_FILES = "_dead_letter/*/*.jsonl"


def report(lake: str) -> str:
    import duckdb

    files = os.path.join(lake, DATA_FILES)
    if not glob.glob(files):
        return "\n".join([f"{lake}: no Parquet files yet", *drift_section(lake)])
    con = duckdb.connect()
    query = f"""
        SELECT okta_org, event_type, event_date, count(*) AS rows, count(DISTINCT uuid) AS events,
               count(*) FILTER (WHERE target_index IS NULL) AS rows_without_target
        FROM read_parquet('{files}', hive_partitioning = true, union_by_name = true)
        GROUP BY ALL ORDER BY okta_org NULLS FIRST, event_type, event_date
    """
    lines = [f"DuckDB over {files}:", query.strip().replace("        ", "  "), ""]
    result = con.execute(query)
    names = [d[0] for d in result.description]
    rows = result.fetchall()
    widths = [max(len(str(n)), *(len(str(r[i])) for r in rows)) for i, n in enumerate(names)]
    lines.append("  ".join(str(n).ljust(w) for n, w in zip(names, widths)))
    for row in rows:
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
    dead = glob.glob(os.path.join(lake, DEAD_LETTER_FILES))
    if dead:
        count = con.execute(
            f"SELECT count(*) FROM read_json_auto({dead!r}, format='newline_delimited')"
        ).fetchone()[0]
        lines.append(f"\ndead-letter records in {os.path.join(lake, '_dead_letter')}: {count}")
    return "\n".join(lines + drift_section(lake))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="okta-personal-lake report", description=__doc__.splitlines()[0])
    parser.add_argument("lake", help="local lake folder")
    args = parser.parse_args(argv)
    print(report(args.lake))
    return 0


if __name__ == "__main__":
    sys.exit(main())
