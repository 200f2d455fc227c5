#!/usr/bin/env python3
"""Compute tokenmeter's five warehouse views from a JSON access log with DuckDB.

    python3 run_views.py sample_access_log.jsonl            # all views, as tables
    python3 run_views.py LOGFILE --view spend_by_feature    # one view
    python3 run_views.py LOGFILE --json                     # machine-readable

LOGFILE has one JSON object per line, as written by the file access logger in
envoy-access-log.yaml. The SQL lives in views.sql next to this script.
Needs the `duckdb` Python package (requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
VIEWS = ("spend_by_feature", "spend_by_model", "spend_by_customer", "token_trends", "efficiency")


def connect(logfile: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with `raw_log` loaded from `logfile` and every view defined."""
    con = duckdb.connect(":memory:")
    # Objects, not typed columns: auto-detection would type a column from its first values and
    # then fail on a line that writes the same key as a string instead of a number.
    con.execute("CREATE TEMP TABLE raw_log AS SELECT json AS j FROM read_ndjson_objects(?)", [str(logfile)])
    con.execute((HERE / "views.sql").read_text())
    return con


def view(con: duckdb.DuckDBPyConnection, name: str) -> list[dict]:
    if name not in VIEWS:
        raise ValueError(f"unknown view {name!r}; choose from {', '.join(VIEWS)}")
    cur = con.execute(f"SELECT * FROM {name}")
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


def run(logfile: str | Path) -> dict[str, list[dict]]:
    con = connect(logfile)
    try:
        return {name: view(con, name) for name in VIEWS}
    finally:
        con.close()


def _plain(v):
    if isinstance(v, Decimal):
        return format(v, "f")  # 0.000000000, not 0E-9
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def _table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    cols = list(rows[0])
    cells = [[("" if r[c] is None else str(_plain(r[c]))) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths))
    return "\n".join([line(cols), line(["-" * w for w in widths]), *map(line, cells)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("logfile")
    ap.add_argument("--view", choices=VIEWS, action="append", help="view to print (repeatable; default all)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = ap.parse_args(argv)
    con = connect(args.logfile)
    names = args.view or list(VIEWS)
    results = {name: view(con, name) for name in names}
    if args.json:
        json.dump({k: [{c: _plain(v) for c, v in r.items()} for r in rows] for k, rows in results.items()},
                  sys.stdout, indent=2)
        print()
    else:
        for name, rows in results.items():
            print(f"== {name}\n{_table(rows)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
