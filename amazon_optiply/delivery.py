"""Writing to Optiply exactly once: every write is recorded as intended before it is sent and as done after.

A write left "intended" (a crash, or an answer lost on the way back) is looked up in Optiply by remoteId
before anything is sent again, so a retry never creates a second product or sell order.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from amazon_optiply.clients.optiply import OptiplyClient
from amazon_optiply.state import SyncState
from amazon_optiply.transforms.optiply import (
    GIVEN_UP,
    HELD_DISPOSITIONS,
    PRODUCT_ATTRIBUTES,
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
    attrs = json.loads(row["attributes"])
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
        if action == "create":
            state.record_intent(PRODUCTS, remote_id, marketplace)
            optiply_id = client.create(
                PRODUCTS, {"remoteId": remote_id, **_product_attributes(row, PRODUCT_ATTRIBUTES)}
            )
            report.add("created")
        else:  # update, take_over or adopt: a PATCH, which is safe to repeat
            optiply_id = int(row["optiply_id"])
            client.update(PRODUCTS, optiply_id, _product_attributes(row, row["changed"].split(",")))
            report.add({"adopt": "adopted", "take_over": "taken_over"}.get(action, "updated"))
        state.record_done(PRODUCTS, remote_id, marketplace, optiply_id, row["attributes"])
        report.written.append({"remoteId": remote_id, "optiply_id": optiply_id, "action": action})
    return report


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
    for remote_id, order_lines in to_deliver.groupby("remoteId", sort=False):
        found_id = None
        if remote_id in intended:
            found = client.find_by_remote_id(SELL_ORDERS, remote_id)
            found_id = int(found["id"]) if found is not None else None
        if found_id is not None:
            state.record_done(SELL_ORDERS, remote_id, marketplace, found_id, None)
            report.recovered += 1
            report.add("delivered")
            continue
        state.record_intent(SELL_ORDERS, remote_id, marketplace)
        optiply_id = client.create(SELL_ORDERS, sell_order_payload(order_lines))
        state.record_done(SELL_ORDERS, remote_id, marketplace, optiply_id, None)
        report.add("delivered")
        report.written.append({"remoteId": remote_id, "optiply_id": optiply_id, "action": "created"})
    return report
