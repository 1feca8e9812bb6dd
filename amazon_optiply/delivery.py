"""Writing to Optiply exactly once: every write is recorded as intended before it is sent and as done after.

A write left "intended" (a crash, or an answer lost on the way back) is looked up in Optiply by remoteId
before anything is sent again, so a retry never creates a second product or sell order.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import pandas as pd

from amazon_optiply.clients.optiply import OptiplyClient
from amazon_optiply.state import SyncState
from amazon_optiply.transforms.optiply import (
    GIVEN_UP,
    HELD_DISPOSITIONS,
    PRODUCT_ATTRIBUTES,
    product_attributes,
    sell_order_payload,
)

log = logging.getLogger(__name__)

PRODUCTS = "products"
SELL_ORDERS = "sellOrders"


@dataclass
class DeliveryReport:
    counts: dict[str, int] = field(default_factory=dict)
    recovered: int = 0  # writes found already applied in Optiply after a lost answer or crash
    written: list[dict] = field(default_factory=list)  # remoteId, optiply_id, action of each write this run

    def add(self, outcome: str, n: int = 1) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + n


T = TypeVar("T")


def run_writes(client: OptiplyClient, jobs: Iterable[Callable[[], T]]) -> list[T]:
    """Run each job (one record: intent, write, done) with up to `client.max_concurrent_writes` in flight.

    Results come back in the jobs' order. Each job records its own intent before its write and its done
    after, so a kill leaves at most the in-flight writes intended, for the next run to look up. The first
    failure stops new jobs from starting; the ones in flight finish (and record what they did), then it is
    raised.
    """
    limit = max(1, int(getattr(client, "max_concurrent_writes", 1) or 1))
    if limit == 1:
        return [job() for job in jobs]
    results: dict[int, T] = {}
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="optiply-write") as pool:
        pending: dict[Future[T], int] = {}

        def collect(done: set[Future[T]]) -> None:
            nonlocal failure
            for future in done:
                index = pending.pop(future)
                error = future.exception()
                if error is not None:
                    failure = failure or error
                else:
                    results[index] = future.result()

        for index, job in enumerate(jobs):
            while len(pending) >= limit and failure is None:
                collect(wait(pending, return_when=FIRST_COMPLETED).done)
            if failure is not None:
                break
            pending[pool.submit(job)] = index
        while pending:
            collect(wait(pending, return_when=FIRST_COMPLETED).done)
    if failure is not None:
        raise failure
    return [results[i] for i in sorted(results)]


def resolve_intended(client: OptiplyClient, state: SyncState, entity: str, marketplace: str) -> int:
    """Settle writes a previous run intended but never confirmed: done if Optiply has them, else retried later."""
    records = state.records(entity, marketplace)
    settled = 0
    for remote_id in records.loc[records["state"] == "intended", "remote_id"]:
        found = client.find_by_remote_id(entity, remote_id)
        if found is not None:
            state.record_done(entity, remote_id, marketplace, int(found["id"]), None)
            settled += 1
    return settled


def _product_attributes(row: dict, names: list[str]) -> dict:
    attrs = product_attributes(row)
    out = {k: attrs[k] for k in names if k in attrs}
    if "remoteId" in names:
        out["remoteId"] = row["remoteId"]
    if "eanCode" in out and out["eanCode"] is None and row["action"] == "create":
        del out["eanCode"]
    return out


def deliver_products(
    client: OptiplyClient, state: SyncState, marketplace: str, plan: pd.DataFrame
) -> DeliveryReport:
    """POST new products, PATCH changed attributes of known, taken-over or adopted ones, leave the rest."""
    report = DeliveryReport(recovered=resolve_intended(client, state, PRODUCTS, marketplace))
    # Products settled just now have no attributes on record: compare them again on the next run.
    jobs: list[Callable[[], tuple[str, dict]]] = []
    for row in plan.to_dict("records"):
        remote_id, action = row["remoteId"], row["action"]
        if action == "conflict":
            report.add("conflict")
            continue
        if action == "unchanged":
            report.add("unchanged")
            if row["known_from"] == "optiply":  # found in Optiply, not in the local state: remember it
                state.record_done(PRODUCTS, remote_id, marketplace, int(row["optiply_id"]), row["attributes"])
                report.recovered += 1
            continue
        jobs.append(lambda row=row: _write_product(client, state, marketplace, row))
    for outcome, written in run_writes(client, jobs):
        report.add(outcome)
        report.written.append(written)
    return report


def _write_product(client: OptiplyClient, state: SyncState, marketplace: str, row: dict) -> tuple[str, dict]:
    remote_id, action = row["remoteId"], row["action"]
    if action == "create":
        state.record_intent(PRODUCTS, remote_id, marketplace)
        optiply_id = client.create(
            PRODUCTS, {"remoteId": remote_id, **_product_attributes(row, PRODUCT_ATTRIBUTES)}
        )
        outcome = "created"
    else:  # update, take_over or adopt: a PATCH, which is safe to repeat
        optiply_id = int(row["optiply_id"])
        client.update(PRODUCTS, optiply_id, _product_attributes(row, row["changed"].split(",")))
        outcome = {"adopt": "adopted", "take_over": "taken_over"}.get(action, "updated")
    state.record_done(PRODUCTS, remote_id, marketplace, optiply_id, row["attributes"])
    return outcome, {"remoteId": remote_id, "optiply_id": optiply_id, "action": action}


def products_under_remote_ids(client: OptiplyClient, remote_ids: list[str]) -> list[dict]:
    """The ENABLED products Optiply holds under any of these remoteIds, one look-up each (no IN filter)."""
    found: dict[int, dict] = {}
    for remote_id in dict.fromkeys(remote_ids):
        for record in client.iter_records(PRODUCTS, {"remoteId": remote_id, "status": "ENABLED"}):
            found[record["id"]] = record
    return [found[i] for i in sorted(found)]


def delivered_in_optiply(client: OptiplyClient, placed_from: str) -> dict[str, int]:
    """remoteId -> id of the sell orders Optiply holds placed from `placed_from` on (any coupling)."""
    return {
        str(r["remoteId"]): int(r["id"])
        for r in client.iter_records(SELL_ORDERS, {"placed[GE]": placed_from})
        if r.get("remoteId")
    }


def record_existing_sell_orders(state: SyncState, marketplace: str, existing: pd.DataFrame) -> int:
    """Record the orders Optiply already held (remoteId, optiply_id) as delivered; returns how many were new.

    Before anything is posted, so a crash after this never loses them: later cycles skip Optiply's read.
    """
    records = state.records(SELL_ORDERS, marketplace)
    done = set(records.loc[records["state"] == "done", "remote_id"])
    new = existing[~existing["remoteId"].isin(done)]
    for remote_id, optiply_id in zip(new["remoteId"], new["optiply_id"], strict=True):
        state.record_done(SELL_ORDERS, remote_id, marketplace, int(optiply_id), None)
    return len(new)


def deliver_sell_orders(
    client: OptiplyClient, state: SyncState, marketplace: str, lines: pd.DataFrame, now: datetime
) -> DeliveryReport:
    """Post every order whose disposition is `deliver`, once; count the others by disposition.

    Held orders are remembered with the time they were first held (their retention runs from there).
    Orders Optiply held before a first run (or a lost state database) are recorded beforehand
    (record_existing_sell_orders) and arrive here as `already_delivered`.
    """
    records = state.records(SELL_ORDERS, marketplace)
    intended = set(records.loc[records["state"] == "intended", "remote_id"])
    report = DeliveryReport()
    orders = lines.drop_duplicates("remoteId")
    for disposition, n in orders["disposition"].value_counts().items():
        if disposition != "deliver":
            report.add(str(disposition), int(n))
    for given_up, dispositions in ((False, HELD_DISPOSITIONS), (True, (GIVEN_UP,))):
        held = orders[orders["disposition"].isin(dispositions)]
        state.record_held(
            SELL_ORDERS,
            dict(zip(held["remoteId"], held["problem"].fillna(""), strict=True)),
            marketplace,
            now,
            given_up,
        )
    to_deliver = lines[lines["disposition"] == "deliver"]

    def deliver(remote_id: str, order_lines: pd.DataFrame) -> tuple[bool, dict | None]:
        if remote_id in intended:
            found = client.find_by_remote_id(SELL_ORDERS, remote_id)
            if found is not None:
                state.record_done(SELL_ORDERS, remote_id, marketplace, int(found["id"]), None)
                return True, None
        state.record_intent(SELL_ORDERS, remote_id, marketplace)
        optiply_id = client.create(SELL_ORDERS, sell_order_payload(order_lines))
        state.record_done(SELL_ORDERS, remote_id, marketplace, optiply_id, None)
        return False, {"remoteId": remote_id, "optiply_id": optiply_id, "action": "created"}

    jobs = [
        lambda r=remote_id, o=order_lines: deliver(r, o)
        for remote_id, order_lines in to_deliver.groupby("remoteId", sort=False)
    ]
    for recovered, written in run_writes(client, jobs):
        report.add("delivered")
        if recovered:
            report.recovered += 1
        if written is not None:
            report.written.append(written)
    return report


def settle_intended(client: OptiplyClient, state: SyncState, entity: str, marketplace: str) -> int:
    """Like resolve_intended, and an intent Optiply never applied is forgotten, so it is planned afresh."""
    records = state.records(entity, marketplace)
    settled = 0
    for remote_id in records.loc[records["state"] == "intended", "remote_id"]:
        found = client.find_by_remote_id(entity, remote_id)
        if found is not None:
            state.record_done(entity, remote_id, marketplace, int(found["id"]), None)
            settled += 1
        else:
            state.forget_record(entity, remote_id)
    return settled


def optiply_ids(state: SyncState, entity: str, marketplace: str) -> dict[str, int]:
    """remoteId -> Optiply id of this entity's records on record as done."""
    records = state.records(entity, marketplace)
    done = records[records["state"] == "done"]
    return dict(zip(done["remote_id"], done["optiply_id"].astype(int), strict=True))


def deliver_records(
    client: OptiplyClient,
    state: SyncState,
    entity: str,
    marketplace: str,
    desired: list[dict],
    create_only: bool = False,
) -> DeliveryReport:
    """Make Optiply hold `desired` (each a dict of attributes with a remoteId), exactly once.

    New records are POSTed (intent recorded before, done after); records on record get a PATCH of only the
    attributes that changed since what was last sent, unless `create_only` (sell orders, receipts: posted
    once, never updated). What did not change is not written. A record settled after a crash or a lost
    answer has nothing on record of what it holds (it was created from an earlier cycle's attributes): it
    gets a PATCH of all its attributes once.
    """
    report = DeliveryReport(recovered=settle_intended(client, state, entity, marketplace))
    records = state.records(entity, marketplace)
    done = records[records["state"] == "done"].set_index("remote_id")
    jobs: list[Callable[[], dict]] = []
    for attributes in desired:
        remote_id = str(attributes["remoteId"])
        sent = json.dumps(attributes, sort_keys=True, default=str)
        if remote_id in done.index:
            previous = done.at[remote_id, "attributes_json"]
            before = json.loads(previous) if isinstance(previous, str) else None
            changed = {k: v for k, v in attributes.items() if before is None or before.get(k) != v}
            changed.pop("remoteId", None)
            if create_only or not changed:
                if before is None:  # settled after a lost answer: remember what it holds now
                    state.record_done(
                        entity, remote_id, marketplace, int(done.at[remote_id, "optiply_id"]), sent
                    )
                report.add("unchanged")
                continue
            jobs.append(
                lambda r=remote_id, i=int(done.at[remote_id, "optiply_id"]), c=changed, t=sent: _write_record(
                    client, state, entity, marketplace, r, i, c, t
                )
            )
        else:
            jobs.append(
                lambda r=remote_id, a=attributes, t=sent: _write_record(
                    client, state, entity, marketplace, r, None, a, t
                )
            )
    for written in run_writes(client, jobs):
        report.add(written["action"])
        report.written.append(written)
    return report


def _write_record(
    client: OptiplyClient,
    state: SyncState,
    entity: str,
    marketplace: str,
    remote_id: str,
    optiply_id: int | None,
    attributes: dict,
    sent: str,
) -> dict:
    """PATCH `attributes` of the record `optiply_id`, or (None) POST a new one: intent before, done after."""
    if optiply_id is not None:
        client.update(entity, optiply_id, attributes)
        action = "updated"
    else:
        state.record_intent(entity, remote_id, marketplace)
        optiply_id = client.create(entity, attributes)
        action = "created"
    state.record_done(entity, remote_id, marketplace, optiply_id, sent)
    return {"remoteId": remote_id, "optiply_id": optiply_id, "action": action}


BUY_ORDERS, BUY_ORDER_LINES, RECEIPT_LINES = "buyOrders", "buyOrderLines", "receiptLines"


def _record_buy_order_lines(
    client: OptiplyClient, state: SyncState, marketplace: str, buy_order_id: int
) -> None:
    """Optiply made the nested lines: note each one's id under its remoteId, for the receipts to point at."""
    for line in client.iter_records(BUY_ORDER_LINES, {"buyOrderId": str(buy_order_id)}):
        if line.get("remoteId"):
            state.record_done(BUY_ORDER_LINES, str(line["remoteId"]), marketplace, int(line["id"]), None)


def deliver_buy_orders(
    client: OptiplyClient, state: SyncState, marketplace: str, orders: list[dict]
) -> DeliveryReport:
    """POST each new buy order with its lines nested (one write: never an order without its lines), once;
    PATCH what changed of the order itself (completed when Amazon closes it, the expected delivery)."""
    report = DeliveryReport(recovered=settle_intended(client, state, BUY_ORDERS, marketplace))
    lines_known = set(optiply_ids(state, BUY_ORDER_LINES, marketplace))
    records = state.records(BUY_ORDERS, marketplace)
    done = records[records["state"] == "done"].set_index("remote_id")

    def deliver(attributes: dict) -> dict | None:
        remote_id = str(attributes["remoteId"])
        header = {k: v for k, v in attributes.items() if k != "orderLines"}
        sent = json.dumps(header, sort_keys=True, default=str)
        if remote_id in done.index:
            optiply_id = int(done.at[remote_id, "optiply_id"])
            if not {line["attributes"]["remoteId"] for line in attributes["orderLines"]} <= lines_known:
                _record_buy_order_lines(client, state, marketplace, optiply_id)  # recovered after a crash
            previous = done.at[remote_id, "attributes_json"]
            before = json.loads(previous) if isinstance(previous, str) else {}
            changed = {k: v for k, v in header.items() if k != "remoteId" and before.get(k) != v}
            if not changed:
                return None
            client.update(BUY_ORDERS, optiply_id, changed)
            action = "updated"
        else:
            state.record_intent(BUY_ORDERS, remote_id, marketplace)
            optiply_id = client.create(BUY_ORDERS, attributes)
            _record_buy_order_lines(client, state, marketplace, optiply_id)
            action = "created"
        state.record_done(BUY_ORDERS, remote_id, marketplace, optiply_id, sent)
        return {"remoteId": remote_id, "optiply_id": optiply_id, "action": action}

    for written in run_writes(client, [lambda a=attributes: deliver(a) for attributes in orders]):
        if written is None:
            report.add("unchanged")
            continue
        report.add(written["action"])
        report.written.append(written)
    return report


def received_on_record(state: SyncState, marketplace: str) -> dict[str, int]:
    """Per buy order line remoteId, the cumulative received eaches its delivered receipt lines add up to.

    A receipt settled after a crash (found in Optiply, nothing on record of what was sent) counts by its
    remoteId, `<line remoteId>-<cumulative received>`: it names the count it brought its line to.
    """
    records = state.records(RECEIPT_LINES, marketplace)
    done = records[records["state"] == "done"]
    totals: dict[str, int] = {}
    for remote_id, raw in zip(done["remote_id"], done["attributes_json"], strict=True):
        if isinstance(raw, str):
            receipt = json.loads(raw)
            line, received = receipt["line"], int(receipt["received_total"])
        else:
            line, _, count = str(remote_id).rpartition("-")
            received = int(count)
        totals[line] = max(totals.get(line, 0), received)
    return totals


def deliver_receipt_lines(
    client: OptiplyClient, state: SyncState, marketplace: str, receipts: pd.DataFrame
) -> DeliveryReport:
    """POST each receipt line once; `receipts` comes from transforms.receipt_lines after settle_intended."""
    report = DeliveryReport()
    line_ids = optiply_ids(state, BUY_ORDER_LINES, marketplace)
    delivered = set(optiply_ids(state, RECEIPT_LINES, marketplace))

    def deliver(r: Any) -> dict:  # a row of `receipts`
        state.record_intent(RECEIPT_LINES, r.remoteId, marketplace)
        attributes = {
            "remoteId": r.remoteId,
            "buyOrderLineId": line_ids[r.line_remote_id],
            "quantity": int(r.quantity),
            "occurred": r.occurred,
        }
        optiply_id = client.create(RECEIPT_LINES, attributes)
        state.record_done(
            RECEIPT_LINES,
            r.remoteId,
            marketplace,
            optiply_id,
            json.dumps({"line": r.line_remote_id, "received_total": int(r.received_total), **attributes}),
        )
        return {"remoteId": r.remoteId, "optiply_id": optiply_id, "action": "created"}

    jobs = []
    for r in receipts.itertuples(index=False):
        if r.line_remote_id not in line_ids:
            report.add("line_unknown")
        elif r.remoteId in delivered:  # never twice, whatever the plan says
            report.add("already_delivered")
        else:
            jobs.append(lambda r=r: deliver(r))
    for written in run_writes(client, jobs):
        report.add("created")
        report.written.append(written)
    return report
