"""Copy the sync state from one database into another: the local SQLite file into PostgreSQL, say.

    .venv/bin/python deploy/copy_state.py SOURCE_URL TARGET_URL

Both are SQLAlchemy URLs, as SYNC_STATE_DATABASE_URL takes them. Stop the daemon and any run first: nothing
may write the state during the copy. The target's tables are created when missing and must be empty; the
copy is one transaction, so it lands whole or not at all. The source is only read. A PostgreSQL password
can come from PGPASSWORD instead of the URL.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

import sqlalchemy as sa

from amazon_optiply.state import metadata

BATCH = 5000


def _as_utc(row: dict, datetime_columns: list[str]) -> dict:
    # SQLite hands back naive datetimes; they are UTC. A timestamptz column would read them in the
    # server's time zone instead.
    for name in datetime_columns:
        value = row[name]
        if isinstance(value, datetime) and value.tzinfo is None:
            row[name] = value.replace(tzinfo=UTC)
    return row


def copy_state(source_url: str, target_url: str) -> dict[str, int]:
    """Rows copied per table. Raises when the target already holds state."""
    source, target = sa.create_engine(source_url), sa.create_engine(target_url)
    try:
        present = set(sa.inspect(source).get_table_names())
        missing = {t.name for t in metadata.sorted_tables} - present
        if missing == {t.name for t in metadata.sorted_tables}:
            raise SystemExit(f"{source.url!r} holds no sync state (none of its tables)")
        copied: dict[str, int] = {}
        with source.connect() as src, target.begin() as dst:
            metadata.create_all(dst)
            full = [
                t.name
                for t in metadata.sorted_tables
                if dst.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            ]
            if full:
                raise SystemExit(f"the target already holds state in {', '.join(full)}: nothing copied")
            for table in metadata.sorted_tables:
                if table.name in missing:  # a table a newer version added: it starts empty
                    copied[table.name] = 0
                    continue
                datetimes = [c.name for c in table.columns if isinstance(c.type, sa.DateTime)]
                copied[table.name] = 0
                for batch in src.execute(sa.select(table)).mappings().partitions(BATCH):
                    dst.execute(table.insert(), [_as_utc(dict(row), datetimes) for row in batch])
                    copied[table.name] += len(batch)
        return copied
    finally:
        source.dispose()
        target.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/copy_state.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("source_url", help="e.g. sqlite:////var/dagster/sync_state.sqlite")
    parser.add_argument("target_url", help="e.g. postgresql+psycopg2://optiply@db.internal:5432/sync_state")
    args = parser.parse_args(argv)
    for table, count in copy_state(args.source_url, args.target_url).items():
        print(f"{table}: {count} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
