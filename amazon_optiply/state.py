"""The sync's durable memory, in a transactional database (SQLite by default, Postgres by URL).

It holds what must survive runs and crashes: the catalog identifiers already fetched, the orders cursor
per marketplace, the last FATAL per report type and marketplace (for Amazon's cooldowns), every Optiply write (intended before it is sent, done after) with the remoteId -> Optiply
id map it yields, and the Optiply token (Optiply refuses a new one while the last is valid).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

metadata = sa.MetaData()

catalog_identifiers = sa.Table(
    "catalog_identifiers",
    metadata,
    sa.Column("marketplace", sa.String(8), primary_key=True),
    sa.Column("asin", sa.String(20), primary_key=True),
    sa.Column("ean_codes", sa.Text, nullable=False),
    sa.Column("upc_codes", sa.Text, nullable=False),
    sa.Column("item_name", sa.Text, nullable=False),
    sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
)

order_cursors = sa.Table(
    "order_cursors",
    metadata,
    sa.Column("marketplace", sa.String(8), primary_key=True),
    # Orders last updated before `cursor` are delivered or deliberately skipped.
    sa.Column("cursor", sa.DateTime(timezone=True), nullable=True),
    # The end of the last orders report fetched; it becomes the cursor once that report's orders are delivered.
    sa.Column("fetched_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("orders_start", sa.DateTime(timezone=True), nullable=False),
)

# One row per Optiply record this integration writes: the id map and the exactly-once ledger in one.
optiply_records = sa.Table(
    "optiply_records",
    metadata,
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("remote_id", sa.String(255), primary_key=True),
    sa.Column("marketplace", sa.String(8), nullable=False),
    sa.Column("optiply_id", sa.BigInteger, nullable=True),
    # intended | done; sell orders also held (matching no product yet) | given_up (held past retention)
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attributes_json", sa.Text, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# The last FATAL per report type and marketplace, so a report inside Amazon's cooldown is not asked for again.
report_fatals = sa.Table(
    "report_fatals",
    metadata,
    sa.Column("report_type", sa.String(100), primary_key=True),
    sa.Column("marketplace", sa.String(8), primary_key=True),
    sa.Column("report_id", sa.String(64), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),  # Amazon's createdTime of the FATAL report
    sa.Column("reason", sa.Text, nullable=False),
)

# Where a windowed stream has read up to (the vendor's sales days, ...), per marketplace.
stream_cursors = sa.Table(
    "stream_cursors",
    metadata,
    sa.Column("stream", sa.String(64), primary_key=True),
    sa.Column("marketplace", sa.String(8), primary_key=True),
    sa.Column("cursor", sa.DateTime(timezone=True), nullable=False),
)

# The FBA inventory as last read, so a cycle asks Amazon only for what changed since (startDateTime).
fba_inventory = sa.Table(
    "fba_inventory",
    metadata,
    sa.Column("marketplace", sa.String(8), primary_key=True),
    sa.Column("seller_sku", sa.String(255), primary_key=True),
    sa.Column("fn_sku", sa.String(64), primary_key=True),  # "" when Amazon sends none
    sa.Column("condition", sa.String(64), primary_key=True),
    sa.Column("asin", sa.String(20), nullable=True),
    sa.Column("total_quantity", sa.BigInteger, nullable=False),
    sa.Column("fulfillable_quantity", sa.BigInteger, nullable=False),
    # Units on their way into FBA (part of total_quantity); added by _add_fba_inbound to older databases.
    sa.Column("inbound_working_quantity", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("inbound_shipped_quantity", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("inbound_receiving_quantity", sa.BigInteger, nullable=False, server_default="0"),
)
FBA_INBOUND_COLUMNS = ("inbound_working_quantity", "inbound_shipped_quantity", "inbound_receiving_quantity")

fba_reads = sa.Table(
    "fba_reads",
    metadata,
    sa.Column("marketplace", sa.String(8), primary_key=True),
    sa.Column("read_until", sa.DateTime(timezone=True), nullable=False),  # Amazon's clock
    sa.Column("full_read_at", sa.DateTime(timezone=True), nullable=False),  # ours
)

# The orders of the orders report whose items (getOrderItems) are fetched or still to fetch, so a cycle spends
# calls on new orders only, and orders left over by a cycle's time budget wait for the next one.
itemised_orders = sa.Table(
    "itemised_orders",
    metadata,
    sa.Column("marketplace", sa.String(8), primary_key=True),
    sa.Column("amazon_order_id", sa.String(32), primary_key=True),
    sa.Column("order_status", sa.String(32), nullable=False),  # as the orders report had it when queued
    sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("itemised_at", sa.DateTime(timezone=True), nullable=True),  # None: still to fetch
    sa.Column("items", sa.Integer, nullable=True),
)

# The tenant's SP-API token bucket per operation, shared by all its run processes: Amazon's rate limits are
# per selling partner and application, so two marketplaces' runs at once spend one budget.
request_budgets = sa.Table(
    "request_budgets",
    metadata,
    sa.Column("operation", sa.String(64), primary_key=True),
    sa.Column("tokens", sa.Float, nullable=False),  # negative: requests already promised a later slot
    sa.Column("updated", sa.Float, nullable=False),  # epoch seconds
    # The live rate Amazon last announced (x-amzn-RateLimit-Limit), so a new run starts from it, not from
    # the documented default.
    sa.Column("rate", sa.Float, nullable=True),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored here is UTC.
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _add_fba_inbound(conn) -> None:
    """A database made before FBA inbound units were kept gets their columns; its snapshot knows none of
    them, so the next FBA read of every marketplace is a full one."""
    present = {c["name"] for c in sa.inspect(conn).get_columns("fba_inventory")}
    missing = [name for name in FBA_INBOUND_COLUMNS if name not in present]
    for name in missing:
        try:
            conn.execute(sa.text(f"ALTER TABLE fba_inventory ADD COLUMN {name} BIGINT NOT NULL DEFAULT 0"))
        except sa.exc.OperationalError as exc:  # SQLite: another process of the tenant added it first
            if "duplicate column" not in str(exc):
                raise
    if missing:
        conn.execute(fba_reads.delete())


_opened: OrderedDict[tuple[int, str], tuple[SyncState, tuple[int, int] | None]] = OrderedDict()
_opening = threading.Lock()
OPEN_STATES = 8  # a process touching many tenants' databases (an export, a sensor) keeps this many open


def _sqlite_file_identity(database_url: str) -> tuple[int, int] | None:
    """A SQLite database file's (device, inode), or None: not SQLite, in memory, or not there (yet)."""
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    try:
        found = os.stat(url.database)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def open_state(database_url: str) -> SyncState:
    """This process's SyncState for a database, kept for the next call. Steps and writes open the state
    hundreds of times a run; an engine (a connection pool) and the table checks made each time cost more
    CPU than the sync's work. A SQLite file deleted or replaced since (a lost volume, a restore) is opened
    again. The least recently used beyond OPEN_STATES closes its idle connections."""
    key = (os.getpid(), database_url)  # a forked child must not use its parent's pooled connections
    with _opening:
        if key in _opened:
            state, identity = _opened[key]
            if identity is None or _sqlite_file_identity(database_url) == identity:
                _opened.move_to_end(key)
                return state
            del _opened[key]
            state.engine.dispose()
        state = SyncState(database_url)
        _opened[key] = (state, _sqlite_file_identity(database_url))
        while len(_opened) > OPEN_STATES:
            _opened.popitem(last=False)[1][0].engine.dispose()  # still usable by a holder: it reconnects
        return state


class SyncState:
    def __init__(self, database_url: str) -> None:
        # Deliveries record intents and dones from several threads: SQLite waits for its write lock.
        connect_args = {"timeout": 30} if database_url.startswith("sqlite") else {}
        self.engine = sa.create_engine(database_url, future=True, connect_args=connect_args)
        with self.engine.begin() as conn:
            # Runs of several marketplaces start together; on Postgres, concurrent CREATE TABLEs collide.
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('amazon_optiply.state'))"))
            metadata.create_all(conn)
            _add_fba_inbound(conn)

    # ---- catalog identifiers --------------------------------------------------------------------------
    def cached_identifiers(self, marketplace: str) -> pd.DataFrame:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(catalog_identifiers).where(catalog_identifiers.c.marketplace == marketplace)
            ).mappings()
            frame = pd.DataFrame(list(rows), columns=[c.name for c in catalog_identifiers.columns])
        frame["fetched_at"] = pd.to_datetime(frame["fetched_at"], utc=True)
        return frame

    def store_identifiers(self, marketplace: str, identifiers: pd.DataFrame, fetched_at: datetime) -> None:
        if identifiers.empty:
            return
        records = [
            {
                "marketplace": marketplace,
                "asin": r["asin"],
                "ean_codes": r["ean_codes"] or "",
                "upc_codes": r["upc_codes"] or "",
                "item_name": r["item_name"] or "",
                "fetched_at": fetched_at,
            }
            for r in identifiers.to_dict("records")
        ]
        with self.engine.begin() as conn:
            conn.execute(
                catalog_identifiers.delete().where(
                    catalog_identifiers.c.marketplace == marketplace,
                    catalog_identifiers.c.asin.in_([r["asin"] for r in records]),
                )
            )
            conn.execute(catalog_identifiers.insert(), records)

    # ---- orders cursor --------------------------------------------------------------------------------
    def order_cursor(self, marketplace: str) -> tuple[datetime | None, datetime | None]:
        """(cursor, orders_start); both None before the first orders report."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(order_cursors).where(order_cursors.c.marketplace == marketplace)
            ).first()
        return (_utc(row.cursor), _utc(row.orders_start)) if row else (None, None)

    def note_orders_window(
        self, marketplace: str, fetched_until: datetime | None, orders_start: datetime
    ) -> None:
        with self.engine.begin() as conn:
            updated = conn.execute(
                order_cursors.update()
                .where(order_cursors.c.marketplace == marketplace)
                .values(fetched_until=fetched_until, orders_start=orders_start)
            )
            if updated.rowcount == 0:
                conn.execute(
                    order_cursors.insert().values(
                        marketplace=marketplace, fetched_until=fetched_until, orders_start=orders_start
                    )
                )

    def commit_orders_cursor(self, marketplace: str, held_since: datetime | None = None) -> datetime | None:
        """Move the cursor to the end of the last fetched window, but not past an order still held.

        Call only after the window's orders are delivered or deliberately skipped; a held order's last
        update stays inside the next window, so it is looked at again.
        """
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(order_cursors.c.fetched_until).where(order_cursors.c.marketplace == marketplace)
            ).first()
            if row is None or row.fetched_until is None:
                return None
            cursor = _utc(row.fetched_until)
            if held_since is not None:
                cursor = min(cursor, held_since)
            conn.execute(
                order_cursors.update().where(order_cursors.c.marketplace == marketplace).values(cursor=cursor)
            )
        return self.order_cursor(marketplace)[0]

    # ---- Optiply records ------------------------------------------------------------------------------
    def records(self, entity: str, marketplace: str | None = None) -> pd.DataFrame:
        query = sa.select(optiply_records).where(optiply_records.c.entity == entity)
        if marketplace is not None:
            query = query.where(optiply_records.c.marketplace == marketplace)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query).mappings())
        return pd.DataFrame(rows, columns=[c.name for c in optiply_records.columns])

    def _record_state(self, conn, entity: str, remote_id: str):
        """The row on record for this remote id (state, attributes_json), or None."""
        return conn.execute(
            sa.select(optiply_records.c.state, optiply_records.c.attributes_json).where(
                optiply_records.c.entity == entity, optiply_records.c.remote_id == remote_id
            )
        ).first()

    def _put_record(self, conn, entity: str, remote_id: str, **values) -> None:
        """Replace the row of this remote id: one row per record, whatever its state."""
        conn.execute(
            optiply_records.delete().where(
                optiply_records.c.entity == entity, optiply_records.c.remote_id == remote_id
            )
        )
        conn.execute(
            optiply_records.insert().values(entity=entity, remote_id=remote_id, updated_at=_now(), **values)
        )

    def record_intent(
        self, entity: str, remote_id: str, marketplace: str, optiply_id: int | None = None
    ) -> None:
        """Write down a write before sending it, so a crash in between is found and resolved next run."""
        with self.engine.begin() as conn:
            existing = self._record_state(conn, entity, remote_id)
            if existing is not None and existing.state in ("intended", "done"):
                return
            self._put_record(
                conn, entity, remote_id, marketplace=marketplace, optiply_id=optiply_id, state="intended"
            )

    def record_held(
        self, entity: str, held: dict[str, str], marketplace: str, at: datetime, given_up: bool = False
    ) -> None:
        """Remember orders not sent (remote_id -> why) and since when; the first time held is kept."""
        state = "given_up" if given_up else "held"
        with self.engine.begin() as conn:
            for remote_id, problem in held.items():
                row = self._record_state(conn, entity, remote_id)
                if row is not None and row.state in ("intended", "done"):
                    continue
                since = json.loads(row.attributes_json)["since"] if row is not None else at.isoformat()
                self._put_record(
                    conn,
                    entity,
                    remote_id,
                    marketplace=marketplace,
                    state=state,
                    attributes_json=json.dumps({"since": since, "problem": problem}),
                )

    def held_since(self, entity: str, marketplace: str) -> pd.Series:
        """remote_id -> when the order was first held, for orders held or given up."""
        records = self.records(entity, marketplace)
        records = records[records["state"].isin(["held", "given_up"])]
        since = [json.loads(a)["since"] for a in records["attributes_json"]]
        return pd.Series(
            pd.to_datetime(since, utc=True),
            index=records["remote_id"].to_numpy(),
            dtype="datetime64[ns, UTC]",
        )

    def record_done(
        self, entity: str, remote_id: str, marketplace: str, optiply_id: int, attributes_json: str | None
    ) -> None:
        with self.engine.begin() as conn:
            self._put_record(
                conn,
                entity,
                remote_id,
                marketplace=marketplace,
                optiply_id=optiply_id,
                state="done",
                attributes_json=attributes_json,
            )

    def forget_record(self, entity: str, remote_id: str) -> None:
        """Drop a record never applied in Optiply (an intent found nowhere), so it is planned afresh."""
        with self.engine.begin() as conn:
            conn.execute(
                optiply_records.delete().where(
                    optiply_records.c.entity == entity, optiply_records.c.remote_id == remote_id
                )
            )

    # ---- windowed streams -----------------------------------------------------------------------------
    def stream_cursor(self, stream: str, marketplace: str) -> datetime | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(stream_cursors.c.cursor).where(
                    stream_cursors.c.stream == stream, stream_cursors.c.marketplace == marketplace
                )
            ).first()
        return _utc(row.cursor) if row else None

    def set_stream_cursor(self, stream: str, marketplace: str, cursor: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                stream_cursors.delete().where(
                    stream_cursors.c.stream == stream, stream_cursors.c.marketplace == marketplace
                )
            )
            conn.execute(
                stream_cursors.insert().values(stream=stream, marketplace=marketplace, cursor=cursor)
            )

    # ---- itemised orders ------------------------------------------------------------------------------
    def queue_orders(self, marketplace: str, statuses: dict[str, str], at: datetime) -> int:
        """Queue the orders (id -> status) never queued before for itemising; returns how many were new."""
        if not statuses:
            return 0
        with self.engine.begin() as conn:
            known: set[str] = set()
            for chunk in _chunks(sorted(statuses), 500):
                known |= set(
                    conn.execute(
                        sa.select(itemised_orders.c.amazon_order_id).where(
                            itemised_orders.c.marketplace == marketplace,
                            itemised_orders.c.amazon_order_id.in_(chunk),
                        )
                    ).scalars()
                )
            new = [
                {"marketplace": marketplace, "amazon_order_id": i, "order_status": s, "queued_at": at}
                for i, s in sorted(statuses.items())
                if i not in known
            ]
            for chunk in _chunks(new, 5000):
                conn.execute(itemised_orders.insert(), chunk)
        return len(new)

    def orders_to_itemise(self, marketplace: str) -> list[tuple[str, str]]:
        """(order id, status) of the queued orders whose items are still to fetch, oldest first."""
        query = (
            sa.select(itemised_orders.c.amazon_order_id, itemised_orders.c.order_status)
            .where(itemised_orders.c.marketplace == marketplace, itemised_orders.c.itemised_at.is_(None))
            .order_by(itemised_orders.c.queued_at, itemised_orders.c.amazon_order_id)
        )
        with self.engine.connect() as conn:
            return [(r.amazon_order_id, r.order_status) for r in conn.execute(query)]

    def note_itemised(self, marketplace: str, order_id: str, items: int, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                itemised_orders.update()
                .where(
                    itemised_orders.c.marketplace == marketplace,
                    itemised_orders.c.amazon_order_id == order_id,
                )
                .values(itemised_at=at, items=items)
            )

    # ---- report FATALs -------------------------------------------------------------------------------
    def report_fatal(self, report_type: str, marketplace: str) -> tuple[datetime, str] | None:
        """(when, reason) of the last FATAL of this report type in this marketplace, if not cleared since."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(report_fatals.c.at, report_fatals.c.reason).where(
                    report_fatals.c.report_type == report_type, report_fatals.c.marketplace == marketplace
                )
            ).first()
        return (_utc(row.at), row.reason) if row else None

    def record_report_fatal(
        self, report_type: str, marketplace: str, report_id: str, at: datetime, reason: str
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                report_fatals.delete().where(
                    report_fatals.c.report_type == report_type, report_fatals.c.marketplace == marketplace
                )
            )
            conn.execute(
                report_fatals.insert().values(
                    report_type=report_type,
                    marketplace=marketplace,
                    report_id=report_id,
                    at=at,
                    reason=reason,
                )
            )

    def clear_report_fatal(self, report_type: str, marketplace: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                report_fatals.delete().where(
                    report_fatals.c.report_type == report_type, report_fatals.c.marketplace == marketplace
                )
            )

    # ---- FBA inventory --------------------------------------------------------------------------------
    FBA_KEY = ("seller_sku", "fn_sku", "condition")

    def fba_reads(self, marketplace: str) -> tuple[datetime | None, datetime | None]:
        """(until when Amazon's changes were read, when the last full read was), or Nones."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(fba_reads).where(fba_reads.c.marketplace == marketplace)).first()
        return (_utc(row.read_until), _utc(row.full_read_at)) if row else (None, None)

    def store_fba(self, marketplace: str, rows: pd.DataFrame, read_until: datetime, full: bool) -> None:
        """Replace the snapshot (a full read) or upsert the changed rows, and note the read, in one go."""
        records = rows.assign(
            marketplace=marketplace, fn_sku=rows["fn_sku"].fillna(""), condition=rows["condition"].fillna("")
        )[[c.name for c in fba_inventory.columns]].to_dict("records")
        with self.engine.begin() as conn:
            mine = fba_inventory.c.marketplace == marketplace
            if full:
                conn.execute(fba_inventory.delete().where(mine))
            elif records:
                keys = {tuple(r[k] for k in self.FBA_KEY) for r in records}
                for chunk in _chunks(sorted(keys), 500):
                    conn.execute(
                        fba_inventory.delete().where(
                            mine, sa.tuple_(*(fba_inventory.c[k] for k in self.FBA_KEY)).in_(chunk)
                        )
                    )
            for chunk in _chunks(records, 5000):
                conn.execute(fba_inventory.insert(), chunk)
            previous = conn.execute(
                sa.select(fba_reads).where(fba_reads.c.marketplace == marketplace)
            ).first()
            full_read_at = _now() if full or previous is None else previous.full_read_at
            conn.execute(fba_reads.delete().where(fba_reads.c.marketplace == marketplace))
            conn.execute(
                fba_reads.insert().values(
                    marketplace=marketplace, read_until=read_until, full_read_at=full_read_at
                )
            )

    def fba_snapshot(self, marketplace: str) -> pd.DataFrame:
        query = sa.select(fba_inventory).where(fba_inventory.c.marketplace == marketplace)
        with self.engine.connect() as conn:
            frame = pd.read_sql(query, conn)
        frame = frame.drop(columns="marketplace").replace({"fn_sku": {"": None}, "condition": {"": None}})
        return frame

    # ---- tokens ---------------------------------------------------------------------------------------
    def token_store(self, name: str) -> TokenStore:
        return TokenStore(self, name)

    def budget_store(self) -> SharedBudgetStore:
        return SharedBudgetStore(self)

    # ---- a tenant's data, whole (a customer asking for it, or leaving) ---------------------------------------
    def export_tables(self) -> dict[str, pd.DataFrame]:
        """Every table of this state, as it is."""
        with self.engine.connect() as conn:
            return {name: pd.read_sql(sa.select(table), conn) for name, table in metadata.tables.items()}

    def drop_everything(self) -> None:
        """Drop every table (a SQLite file is removed): the state database belongs to one tenant only."""
        metadata.drop_all(self.engine)
        database = self.engine.url.database
        self.engine.dispose()
        if self.engine.dialect.name == "sqlite" and database:
            Path(database).unlink(missing_ok=True)


class TokenStore:
    """What the Optiply client needs to keep its token across processes."""

    def __init__(self, state: SyncState, name: str) -> None:
        self.state, self.name = state, name

    def load(self) -> dict | None:
        with self.state.engine.connect() as conn:
            row = conn.execute(sa.select(tokens.c.value).where(tokens.c.name == self.name)).first()
        return json.loads(row.value) if row else None

    def save(self, token: dict) -> None:
        with self.state.engine.begin() as conn:
            conn.execute(tokens.delete().where(tokens.c.name == self.name))
            conn.execute(tokens.insert().values(name=self.name, value=json.dumps(token)))


class SharedBudgetStore:
    """SP-API token buckets in the state database, so every run process of a tenant draws on one budget.

    One short transaction per request: the row is written first (taking SQLite's write lock, or Postgres's
    row lock), so two processes never both spend the same token.
    """

    def __init__(self, state: SyncState) -> None:
        self.engine = state.engine

    def _insert_missing(self, conn, operation: str, tokens: float, now: float) -> None:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(
            insert(request_budgets)
            .values(operation=operation, tokens=tokens, updated=now)
            .on_conflict_do_nothing(index_elements=["operation"])
        )

    def _row(self, conn, operation: str):
        query = sa.select(request_budgets.c.tokens, request_budgets.c.updated, request_budgets.c.rate).where(
            request_budgets.c.operation == operation
        )
        return conn.execute(query.with_for_update()).one()

    def reserve(self, operation: str, rate: float, burst: int) -> float:
        now = time.time()
        with self.engine.begin() as conn:
            self._insert_missing(conn, operation, float(burst), now)
            row = self._row(conn, operation)
            rate = row.rate or rate
            tokens = min(burst, row.tokens + max(0.0, now - row.updated) * rate) - 1
            conn.execute(
                request_budgets.update()
                .where(request_budgets.c.operation == operation)
                .values(tokens=tokens, updated=max(now, row.updated))
            )
        return 0.0 if tokens >= 0 else -tokens / rate

    def learn_rate(self, operation: str, rate: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                request_budgets.update().where(request_budgets.c.operation == operation).values(rate=rate)
            )

    def drain(self, operation: str) -> None:
        now = time.time()
        with self.engine.begin() as conn:
            self._insert_missing(conn, operation, 0.0, now)
            row = self._row(conn, operation)
            conn.execute(
                request_budgets.update()
                .where(request_budgets.c.operation == operation)
                .values(tokens=min(row.tokens, 0.0), updated=max(now, row.updated))
            )
