"""Writing to Optiply exactly once: every write is recorded as intended before it is sent and as done after.

A write left "intended" (a crash, or an answer lost on the way back) is looked up in Optiply by remoteId
before anything is sent again, so a retry never creates a second product or sell order.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import pandas as pd

from amazon_optiply.clients.optiply import OptiplyClient
from amazon_optiply.state import SyncState
from amazon_optiply.transforms.optiply import sell_order_payload

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
    out = {k: attrs[k] for k in names}
    if "eanCode" in out and out["eanCode"] is None and row["action"] == "create":
        del out["eanCode"]
    return out


def deliver_products(
    client: OptiplyClient, state: SyncState, marketplace: str, plan: pd.DataFrame
) -> DeliveryReport:
    """POST new products, PATCH only the changed attributes of known ones, leave the rest alone."""
    report = DeliveryReport(recovered=resolve_intended(client, state, PRODUCTS, marketplace))
    # Products settled just now have no attributes on record: compare them again on the next run.
    for row in plan.to_dict("records"):
        remote_id = row["remoteId"]
        if row["action"] == "unchanged":
            report.add("unchanged")
            continue
        if row["action"] == "create":
            state.record_intent(PRODUCTS, remote_id, marketplace)
            attrs = _product_attributes(row, ["name", "skuCode", "eanCode", "price", "stockLevel"])
            optiply_id = client.create(PRODUCTS, {"remoteId": remote_id, **attrs})
            report.add("created")
        else:
            optiply_id = int(row["optiply_id"])
            client.update(PRODUCTS, optiply_id, _product_attributes(row, row["changed"].split(",")))
            report.add("updated")
        state.record_done(PRODUCTS, remote_id, marketplace, optiply_id, row["attributes"])
        report.written.append({"remoteId": remote_id, "optiply_id": optiply_id, "action": row["action"]})
    return report


def deliver_sell_orders(
    client: OptiplyClient, state: SyncState, marketplace: str, lines: pd.DataFrame
) -> DeliveryReport:
    """Post every order whose disposition is `deliver`, once; count the others by disposition."""
    intended = state.records(SELL_ORDERS, marketplace)
    intended = set(intended.loc[intended["state"] == "intended", "remote_id"])
    report = DeliveryReport()
    orders = lines.drop_duplicates("remoteId")
    for disposition, n in orders["disposition"].value_counts().items():
        if disposition != "deliver":
            report.add(str(disposition), int(n))
    for remote_id, order_lines in lines[lines["disposition"] == "deliver"].groupby("remoteId", sort=False):
        if remote_id in intended:
            found = client.find_by_remote_id(SELL_ORDERS, remote_id)
            if found is not None:
                state.record_done(SELL_ORDERS, remote_id, marketplace, int(found["id"]), None)
                report.recovered += 1
                report.add("delivered")
                continue
        state.record_intent(SELL_ORDERS, remote_id, marketplace)
        optiply_id = client.create(SELL_ORDERS, sell_order_payload(order_lines))
        state.record_done(SELL_ORDERS, remote_id, marketplace, optiply_id, None)
        report.add("delivered")
        report.written.append({"remoteId": remote_id, "optiply_id": optiply_id, "action": "created"})
    return report
