"""Short soaks: a few cycles against the hostile sandbox, a sync process killed mid-delivery, and Optiply's
final state compared with the ground truth, of the seller and of a vendor (`make soak` and
`make soak-vendor` run the long ones); and the vendor soak's judge on records made from the truth."""

import copy
from datetime import UTC, datetime, timedelta

import pytest

from amazon_optiply import soak
from amazon_optiply.sandbox import vendor_truth
from amazon_optiply.sandbox.optiply import ENTITIES
from amazon_optiply.sandbox.vendor import VendorConfig, VendorWorld

COUNTERS = ("orders_lost", "orders_duplicated", "orders_unexpected", "products_wrong")


def last_line_fields(capsys) -> tuple[str, dict[str, str]]:
    line = capsys.readouterr().out.strip().splitlines()[-1]
    return line, dict(part.split("=") for part in line.split())


@pytest.mark.slow
def test_short_hostile_soak_with_a_kill_loses_and_duplicates_nothing(fast_tmp_path, capsys):
    # 429s without a body carry no rate header, so the client waits by Amazon's documented rate (a
    # minute for createReport); the long soak keeps them, the short one leaves them out to stay short.
    status = soak.main(
        [
            "--cycles=2",
            "--kills=1",
            "--skus=150",
            "--faults=hostile,throttle_no_body=0",
            f"--workdir={fast_tmp_path}",
            "--quiet",
        ]
    )
    line, fields = last_line_fields(capsys)
    assert int(fields["kills"]) >= 1 and int(fields["faults"]) > 20, line
    assert int(fields["orders"]) > 100 and int(fields["products"]) > 100, line
    assert (fields["orders_lost"], fields["orders_duplicated"], fields["orders_unexpected"]) == (
        "0",
        "0",
        "0",
    ), line
    assert fields["products_wrong"] == "0", line
    assert status == 0, line


@pytest.mark.slow
def test_short_vendor_soak_with_a_kill_before_the_answer_loses_and_duplicates_nothing(fast_tmp_path, capsys):
    # The first cycle is killed as Optiply applies its first receipt line, before the sync hears back.
    # Throttles are left out: one drains the tenant's shared budget, and the next process waits by Amazon's
    # documented rate (a minute for report calls) until an answer tells it the sandbox's.
    status = soak.main(
        [
            "--vendor",
            "--cycles=2",
            "--kills=1",
            "--faults=hostile,throttle=0,throttle_no_body=0",
            f"--workdir={fast_tmp_path}",
            "--quiet",
        ]
    )
    line, fields = last_line_fields(capsys)
    assert int(fields["kills"]) == 1 and int(fields["faults"]) > 10, line
    assert int(fields["orders"]) > 100 and int(fields["products"]) > 30, line
    assert {k: fields[k] for k in (*COUNTERS, "orders_wrong")} == dict.fromkeys(
        (*COUNTERS, "orders_wrong"), "0"
    ), line
    assert status == 0, line


# ---- the vendor soak's judge ---------------------------------------------------------------------------

ORIGIN = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
ORDERS_START = ORIGIN - timedelta(days=5)


def optiply_as_the_truth_says(facts) -> dict[str, dict[int, dict]]:
    """A snapshot of an Optiply account holding exactly the vendor world's truth, one receipt per line."""
    ids = iter(range(1, 100_000))
    snapshot: dict[str, dict[int, dict]] = {e: {} for e in ENTITIES}

    def put(entity: str, record: dict) -> int:
        record_id = next(ids)
        snapshot[entity][record_id] = record
        return record_id

    supplier = {
        k: put("suppliers", {"remoteId": k, **v}) for k, v in vendor_truth.expected_suppliers(facts).items()
    }
    product = {
        v["skuCode"]: put("products", {"remoteId": k, **v})
        for k, v in vendor_truth.expected_products(facts).items()
    }
    for key, sp in vendor_truth.expected_supplier_products(facts).items():
        put(
            "supplierProducts",
            {
                "remoteId": key,
                "supplierId": supplier[sp["supplier"]],
                "productId": product[sp["asin"]],
                "price": sp["price"],
                "deliveryTime": sp["deliveryTime"],
            },
        )
    for number, order in vendor_truth.expected_buy_orders(facts).items():
        header = {k: order[k] for k in ("placed", "expectedDeliveryDate", "totalValue", "completed")}
        order_id = put("buyOrders", {"remoteId": number, "supplierId": supplier[order["supplier"]], **header})
        for line_id, line in order["lines"].items():
            attributes = {k: line[k] for k in ("quantity", "subtotalValue")}
            line_record = {"remoteId": line_id, "buyOrderId": order_id, "productId": product[line["asin"]]}
            record_id = put("buyOrderLines", {**line_record, **attributes})
            if line["received"]:
                receipt = {
                    "remoteId": f"{line_id}-{line['received']}",
                    "buyOrderLineId": record_id,
                    "quantity": line["received"],
                    "occurred": vendor_truth.optiply_time(line["last_receive_date"]),
                }
                put("receiptLines", receipt)
    for key, order in vendor_truth.expected_demand(facts, ORDERS_START).items():
        lines = [{"productId": product[key.split("-", 1)[0]], "quantity": order["quantity"]}]
        put("sellOrders", {"remoteId": key, "totalValue": order["totalValue"], "orderLines": lines})
    return snapshot


def judge(facts, snapshot) -> dict[str, int]:
    result = soak.compare_vendor_with_ground_truth(facts, snapshot, "full", ORDERS_START)
    return {k: result[k] for k in (*COUNTERS, "orders_wrong")}


def test_the_vendor_soaks_judge_counts_what_is_lost_doubled_unexpected_or_wrong():
    facts = VendorWorld(VendorConfig(origin=ORIGIN)).facts(ORIGIN + timedelta(days=1))
    truth = optiply_as_the_truth_says(facts)
    assert judge(facts, truth) == dict.fromkeys((*COUNTERS, "orders_wrong"), 0)
    assert truth["receiptLines"] and truth["sellOrders"] and truth["buyOrders"]

    def changed(entity: str, change) -> dict:
        snapshot = copy.deepcopy(truth)
        change(snapshot[entity], min(snapshot[entity]))
        return judge(facts, snapshot)

    doubled = changed("receiptLines", lambda t, i: t.__setitem__(999_999, dict(t[i])))
    assert doubled["orders_duplicated"] == 1 and doubled["orders_lost"] == 0, doubled
    # Another remoteId for the same eaches: the line's receipts add up to more than Amazon received.
    over = changed(
        "receiptLines", lambda t, i: t.__setitem__(999_999, {**t[i], "remoteId": t[i]["remoteId"] + "0"})
    )
    assert over["orders_duplicated"] + over["orders_unexpected"] >= 1, over
    assert changed("receiptLines", lambda t, i: t.pop(i))["orders_lost"] == 1
    assert changed("buyOrders", lambda t, i: t.pop(i))["orders_lost"] == 1
    assert (
        changed(
            "sellOrders", lambda t, i: t.__setitem__(999_999, {**t[i], "remoteId": "B0NOTHING-2026-01-01"})
        )["orders_unexpected"]
        == 1
    )
    assert (
        changed("sellOrders", lambda t, i: t[i].update(totalValue=t[i]["totalValue"] + 1))["orders_wrong"]
        == 1
    )
    assert (
        changed("buyOrders", lambda t, i: t[i].update(completed=None, placed="2020-01-01T00:00:00Z"))[
            "orders_wrong"
        ]
        == 1
    )
    assert (
        changed("products", lambda t, i: t[i].update(stockLevel=t[i]["stockLevel"] + 1))["products_wrong"]
        == 1
    )
    assert changed("supplierProducts", lambda t, i: t.pop(i))["products_wrong"] == 1
    assert changed("suppliers", lambda t, i: t.__setitem__(999_999, dict(t[i])))["products_wrong"] == 1


def test_the_vendor_soaks_judge_in_sell_orders_only_wants_the_parents_products_untouched_and_its_orders():
    world = VendorWorld(VendorConfig(origin=ORIGIN))
    facts = world.facts(ORIGIN + timedelta(days=1))
    parent = world.parent_products()
    snapshot: dict[str, dict[int, dict]] = {e: {} for e in ENTITIES}
    snapshot["products"] = {i: dict(p) for i, p in enumerate(parent, start=1)}
    id_of_ean = {p["eanCode"]: i for i, p in snapshot["products"].items()}
    orders = vendor_truth.expected_po_sell_orders(facts, ORDERS_START, set(id_of_ean))
    for i, (number, order) in enumerate(orders.items(), start=1000):
        lines = [{"productId": id_of_ean[ean], **line} for ean, line in order["lines"].items()]
        snapshot["sellOrders"][i] = {
            "remoteId": number,
            "placed": order["placed"],
            "totalValue": order["totalValue"],
            "orderLines": lines[::-1],
        }
    assert orders

    def judge(snapshot) -> dict[str, int]:
        result = soak.compare_vendor_with_ground_truth(
            facts, snapshot, "sell_orders_only", ORDERS_START, parent
        )
        return {k: result[k] for k in (*COUNTERS, "orders_wrong")}

    assert judge(snapshot) == dict.fromkeys((*COUNTERS, "orders_wrong"), 0)
    touched = copy.deepcopy(snapshot)
    touched["products"][1]["stockLevel"] += 1
    touched["suppliers"][5] = {"remoteId": "OPTV1", "name": "OPTV1"}
    assert judge(touched)["products_wrong"] == 2
    doubled = copy.deepcopy(snapshot)
    doubled["sellOrders"][999_999] = dict(doubled["sellOrders"][1000])
    assert judge(doubled)["orders_duplicated"] == 1


# ---- the secondary soak's judge and the worlds' shares --------------------------------------------------


def secondary_account(marketplaces=("DE",)):
    """A sandbox whose Optiply holds the shop's products and exactly the sell orders the truth wants, each
    line on the shop's product of its SKU."""
    from amazon_optiply.sandbox.seller import SellerConfig
    from amazon_optiply.sandbox.server import Sandbox, SandboxConfig

    seller = SellerConfig(marketplaces=marketplaces, skus=40, orders_per_day=60, seed=3)
    sandbox = Sandbox(SandboxConfig(seller=seller, frozen_clock=True))
    skus = sorted(set(sandbox.world.catalog["sku"]))
    ids = sandbox.optiply.preload_products(
        [{"name": f"Shop {s}", "skuCode": s, "stockLevel": 7} for s in skus]
    )
    shop = dict(zip(skus, ids, strict=True))
    shop_products = sandbox.optiply.snapshot()["products"]
    orders_start = seller.origin - timedelta(days=1)
    orders = [
        {
            "remoteId": order.order_id,
            "placed": order.purchase_date.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "totalValue": order.total_value,
            "orderLines": [
                {"productId": shop[ln["sku"]], "quantity": ln["quantity"], "subtotalValue": ln["item_price"]}
                for ln in order.lines
            ],
        }
        for code in marketplaces
        for order in sandbox.world.expected_sell_orders(code, orders_start, sandbox.clock.now())
    ]
    return sandbox, shop, shop_products, orders_start, orders


def secondary_judge(sandbox, shop, shop_products, orders_start) -> dict[str, int]:
    result = soak.compare_secondary_with_ground_truth(sandbox, ["DE"], orders_start, shop, shop_products)
    return {k: result[k] for k in (*COUNTERS, "orders_wrong")}


def test_the_secondary_soaks_judge_finds_nothing_wrong_in_the_truth_and_each_kind_of_wrong_apart():
    sandbox, shop, shop_products, orders_start, orders = secondary_account()
    assert len(orders) > 10
    sandbox.optiply.preload_sell_orders(orders, coupling_id=None)
    clean = secondary_judge(sandbox, shop, shop_products, orders_start)
    assert clean == dict.fromkeys((*COUNTERS, "orders_wrong"), 0)

    sandbox, shop, shop_products, orders_start, orders = secondary_account()
    first, doubled, wrong_line, *rest = orders
    other_product = next(i for i in shop.values() if i != wrong_line["orderLines"][0]["productId"])
    wrong_line = {**wrong_line, "orderLines": [{**wrong_line["orderLines"][0], "productId": other_product}]}
    stranger = {**first, "remoteId": "999-0000000-0000000"}
    sandbox.optiply.preload_sell_orders([doubled, doubled, wrong_line, stranger, *rest], coupling_id=None)
    touched = next(iter(shop.values()))
    with sandbox.optiply.lock:
        sandbox.optiply.products[touched]["stockLevel"] = 8  # as if the sync had written stock
    assert secondary_judge(sandbox, shop, shop_products, orders_start) == {
        "orders_lost": 1,  # first
        "orders_duplicated": 1,
        "orders_unexpected": 1,
        "products_wrong": 1,
        "orders_wrong": 1,
    }


def test_the_soaks_worlds_after_the_first_get_a_tenth_of_the_cycles_and_kills_each():
    assert soak.share_cycles(1000, 20, ["seller", "secondary", "vendor"]) == [
        ("seller", 800, 16),
        ("secondary", 100, 2),
        ("vendor", 100, 2),
    ]
    assert soak.share_cycles(30, 2, ["seller", "secondary", "vendor"]) == [
        ("seller", 24, 2),
        ("secondary", 3, 0),
        ("vendor", 3, 0),
    ]
    assert soak.share_cycles(5, 1, ["seller", "vendor"]) == [("seller", 5, 1)]  # a tenth of 5 is no cycle
    assert soak.share_cycles(7, 3, ["vendor"]) == [("vendor", 7, 3)]
