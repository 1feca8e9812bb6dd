"""Optiply payloads: products from the enriched catalog, sell orders from the orders report.

Pure pandas. The rules an Optiply user relies on are written here once:

- remoteId of a product is the seller SKU; outside the main marketplace `<sku>_<marketplaceId>`, so the
  same SKU sold in two marketplaces is two Optiply products that never collide.
- Only active listings become products. Nothing is ever deleted because a listing disappeared.
- A sell order is delivered once, when Amazon reports it Unshipped, partially shipped or Shipped (its price
  is known then). Pending orders wait (Amazon reports them again when they change); Cancelled ones are
  skipped; orders placed before the integration's start date are skipped.
- totalValue = sum over the order's lines of item-price + shipping-price + gift-wrap-price
  - |item-promotion-discount| - |ship-promotion-discount|. Taxes reported apart (item-tax, shipping-tax)
  are left out; in EU marketplaces Amazon's prices already include VAT.
- A line's subtotalValue is its item-price (unit price x quantity); lines with quantity 0 (cancelled
  items) are left out.
- Flavours: `full` writes products and sell orders; `secondary` only sell orders, whose lines point at
  products another shop system created, found by the match key (skuCode = seller SKU, or eanCode = an EAN
  of the line's ASIN) among Optiply's ENABLED products.
- In the full flavour the main marketplace adopts an existing Optiply product with the same match key
  instead of creating a second one; a remoteId Optiply already holds for our coupling (a deployment that
  lost its state) is recognised, never created again.
- A product the old Amazon integration left under our coupling (remoteId = the ASIN, `<ASIN>_<marketplaceId>`
  outside the main marketplace) is taken over by one listing of that ASIN: the one whose SKU is the
  product's skuCode, else the lowest SKU (code-point order). Its remoteId moves to this platform's.
- An order with a line that matches no product is held (not sent) and retried every cycle; after the
  retention period it is given up and reported as such.
"""

from __future__ import annotations

import binascii
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from amazon_optiply.transforms.catalog import first_occurrences, first_positions, parse_amount

PRODUCT_ATTRIBUTES = ["name", "skuCode", "eanCode", "price", "stockLevel"]

FLAVOURS = ("full", "secondary")
MATCH_KEYS = ("eanCode", "skuCode")
# What the product plan does with each product; `conflict`: several Optiply products share the match key;
# `take_over`: the product the old integration made for the listing's ASIN becomes the listing's.
PRODUCT_ACTIONS = ("create", "update", "unchanged", "adopt", "take_over", "conflict")

DELIVERABLE_STATUSES = {"Unshipped", "Shipping", "PartiallyShipped", "Shipped"}
WAITING_STATUSES = {"Pending", "PendingAvailability", "InvoiceUnconfirmed"}
CANCELLED_STATUSES = {"Cancelled", "Canceled"}

# What happens to an order, checked in this order; "deliver" when none applies.
SKIP_OR_HOLD_DISPOSITIONS = (
    "already_delivered",
    "before_start",
    "cancelled",
    "pending",
    "invalid",
    "unknown_status",
    "unmatched",
)
# Orders neither sent nor deliberately skipped: the cursor must not move past them.
HELD_DISPOSITIONS = ("invalid", "unknown_status", "unmatched")
# A held order past the retention period: reported, no longer retried.
GIVEN_UP = "given_up"
DISPOSITIONS = ("deliver", *SKIP_OR_HOLD_DISPOSITIONS, GIVEN_UP)
DEFAULT_HELD_RETENTION = pd.Timedelta(days=14)
SKIPPED_DISPOSITIONS = ("already_delivered", "before_start", "cancelled", "pending", GIVEN_UP)


def product_remote_id(sku: pd.Series, marketplace_id: str, is_main_marketplace: bool) -> pd.Series:
    return sku if is_main_marketplace else sku + f"_{marketplace_id}"


def optiply_product_payloads(
    catalog: pd.DataFrame, marketplace_id: str, is_main_marketplace: bool
) -> pd.DataFrame:
    """Product attributes for every active, well-formed listing.

    `legacy_remote_id` is the remoteId the old Amazon integration gave the listing's product: the same
    rule with the ASIN in place of the SKU.
    """
    rows = catalog.loc[
        (catalog["listing_status"] == "Active") & catalog["problem"].isna(),
        ["sku", "asin", "name", "ean_code", "price", "stock_level"],
    ]
    is_first = first_occurrences(rows["sku"])  # a SKU's first row
    rows = rows if is_first.all() else rows[is_first]
    return pd.DataFrame(
        {
            "remoteId": product_remote_id(rows["sku"], marketplace_id, is_main_marketplace).astype("string"),
            "name": rows["name"].astype("string"),
            "skuCode": rows["sku"].astype("string"),
            "eanCode": rows["ean_code"].astype("string"),
            "price": rows["price"].astype("float64"),
            "stockLevel": rows["stock_level"].astype("int64"),
            "legacy_remote_id": product_remote_id(rows["asin"], marketplace_id, is_main_marketplace).astype(
                "string"
            ),
        }
    ).reset_index(drop=True)


def attributes_json(row: dict) -> str:
    """The canonical form of a product's attributes, stored after delivery to detect changes."""
    clean = {k: (None if _is_missing(row[k]) else row[k]) for k in PRODUCT_ATTRIBUTES}
    if clean["price"] is not None:
        clean["price"] = round(float(clean["price"]), 2)
    if clean["stockLevel"] is not None:
        clean["stockLevel"] = int(clean["stockLevel"])
    return json.dumps(clean, sort_keys=True, ensure_ascii=False)


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def existing_products_frame(records: list[dict], coupling_id: int) -> pd.DataFrame:
    """Optiply's products as read back (JSON:API attributes flattened), with the remoteId of our coupling.

    `remoteId` is ours only when Optiply's remoteIdMap files it under our coupling (or has no map at all);
    a product another shop system created keeps its remoteId to itself.
    """

    def ours(record: dict) -> str | None:
        remote_map = record.get("remoteIdMap")
        if remote_map is None:
            return record.get("remoteId")
        return remote_map.get(str(coupling_id))

    frame = pd.DataFrame(
        {
            "optiply_id": pd.array([r["id"] for r in records], dtype="Int64"),
            "remoteId": pd.array([ours(r) for r in records], dtype="string"),
            "name": pd.array([r.get("name") for r in records], dtype="string"),
            "skuCode": pd.array([r.get("skuCode") for r in records], dtype="string"),
            "eanCode": pd.array([r.get("eanCode") for r in records], dtype="string"),
            "price": pd.to_numeric(pd.Series([r.get("price") for r in records], dtype="object")),
            "stockLevel": pd.array([r.get("stockLevel") for r in records], dtype="Int64"),
        }
    )
    return frame.astype({"price": "float64"})


# Change detection keeps, per delivered product, a fingerprint of the attributes sent: one 64-bit hash
# per attribute (pandas' SipHash of the value), in hex after a version prefix. Made and compared a column
# at a time, and per attribute, so a PATCH still sends only what changed. A state written before it holds
# the attributes as JSON: read, they are hashed the same way, so an upgrade neither PATCHes every product
# nor misses a change.
FINGERPRINT_PREFIX = "h1:"
_HASH_HEX_DIGITS = 16
FINGERPRINT_LENGTH = len(FINGERPRINT_PREFIX) + _HASH_HEX_DIGITS * len(PRODUCT_ATTRIBUTES)
# An absent attribute (None): apart from every value's hash, the string "None" and 0.0 included.
_ABSENT_HASH = np.uint64(0x9E3779B97F4A7C15)
_NUMERIC_ATTRIBUTES = ("price", "stockLevel")
_HASHED_ROWS_PER_BLOCK = 100_000
_HEX_VALUES = np.full(256, 255, dtype=np.uint8)
_HEX_VALUES[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)


def attribute_hashes(frame: pd.DataFrame) -> np.ndarray:
    """(rows, PRODUCT_ATTRIBUTES) uint64: each attribute's hash, equal exactly when attributes_json's
    value is (strings as they are, price rounded to cents, stock as a number, None where absent)."""
    hashes = np.empty((len(frame), len(PRODUCT_ATTRIBUTES)), dtype=np.uint64)
    # A block of rows at a time: strings are hashed as Python objects, so only a block's are made at once.
    for start in range(0, len(frame), _HASHED_ROWS_PER_BLOCK):
        block = frame.iloc[start : start + _HASHED_ROWS_PER_BLOCK]
        hashes[start : start + len(block)] = _block_hashes(block)
    return hashes


def _block_hashes(frame: pd.DataFrame) -> np.ndarray:
    hashes = np.empty((len(frame), len(PRODUCT_ATTRIBUTES)), dtype=np.uint64)
    for j, name in enumerate(PRODUCT_ATTRIBUTES):
        if name in _NUMERIC_ATTRIBUTES:
            values = frame[name]  # numbers, or objects (None among them) from the JSON of earlier versions
            numbers = (pd.to_numeric(values) if values.dtype == object else values).astype("float64")
            numbers = numbers.round(2) if name == "price" else numbers
            as_array = numbers.to_numpy(dtype="float64", na_value=np.nan)
            absent = np.isnan(as_array)
            column = pd.util.hash_array(as_array)
        else:
            strings = frame[name].astype("string")
            absent = strings.isna().to_numpy(dtype=bool)
            column = pd.util.hash_array(_utf8_objects(strings), categorize=False)
        column[absent] = _ABSENT_HASH
        hashes[:, j] = column
    return hashes


def _utf8_objects(strings: pd.Series) -> np.ndarray:
    """The strings as bytes objects of their UTF-8 (absent ones empty): hash_array hashes a str by its UTF-8
    bytes, so the hashes are the same, without a str made per value on the way."""
    arrow = pa.array(strings.array, type=pa.large_string())
    return pc.fill_null(arrow, "").cast(pa.large_binary()).to_numpy(zero_copy_only=False)


def fingerprints(hashes: np.ndarray) -> pd.Series:
    """The stored form of attribute_hashes: the prefix, then each hash as 16 hex digits."""
    text = np.empty((len(hashes), FINGERPRINT_LENGTH), dtype=np.uint8)
    text[:, : len(FINGERPRINT_PREFIX)] = np.frombuffer(FINGERPRINT_PREFIX.encode(), dtype=np.uint8)
    for start in range(0, len(hashes), _HASHED_ROWS_PER_BLOCK):  # a block's digits at a time: little memory
        block = hashes[start : start + _HASHED_ROWS_PER_BLOCK]
        # Big-endian, so each hash's hex digits read as the number does.
        digits = binascii.hexlify(memoryview(block.astype(">u8")))
        text[start : start + len(block), len(FINGERPRINT_PREFIX) :] = np.frombuffer(
            digits, dtype=np.uint8
        ).reshape(len(block), -1)
    # Straight into an Arrow string array: fixed-width rows, so the offsets are a range.
    offsets = np.arange(0, (len(hashes) + 1) * FINGERPRINT_LENGTH, FINGERPRINT_LENGTH, dtype=np.int64)
    strings = pa.LargeStringArray.from_buffers(len(hashes), pa.py_buffer(offsets), pa.py_buffer(text))
    return pd.Series(pd.arrays.ArrowStringArray(strings))


def stored_attribute_hashes(stored: pd.Series) -> np.ndarray:
    """attribute_hashes of what the state holds: fingerprints read back, JSON (earlier versions) hashed."""
    text = stored.astype("string").reset_index(drop=True)
    is_fingerprint = (
        (text.str.len().eq(FINGERPRINT_LENGTH) & text.str.startswith(FINGERPRINT_PREFIX))
        .fillna(False)
        .to_numpy(dtype=bool)
    )
    hashes = np.empty((len(text), len(PRODUCT_ATTRIBUTES)), dtype=np.uint64)
    if is_fingerprint.any():
        # Fixed-width ASCII rows: the Arrow array's characters are the rows one after the other.
        chars = pa.chunked_array([pa.array(text[is_fingerprint], type=pa.string())]).combine_chunks()
        offsets = np.frombuffer(chars.buffers()[1], dtype=np.int32)[
            chars.offset : chars.offset + len(chars) + 1
        ]
        data = np.frombuffer(chars.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
        digits = _HEX_VALUES[data.reshape(len(chars), -1)[:, len(FINGERPRINT_PREFIX) :]]
        octets = (digits[:, 0::2] << 4) | digits[:, 1::2]
        hashes[is_fingerprint] = np.ascontiguousarray(octets).view(">u8").astype(np.uint64)
    legacy = ~is_fingerprint
    if legacy.any():
        sent = pd.DataFrame(
            [json.loads(v or "{}") for v in text[legacy].fillna("")], columns=PRODUCT_ATTRIBUTES, dtype=object
        )
        hashes[legacy] = attribute_hashes(sent)
    return hashes


# The attributes that differ, by bit (bit j: PRODUCT_ATTRIBUTES[j]), comma-joined in name order.
_CHANGED_NAMES = np.array(
    [
        ",".join(sorted(n for j, n in enumerate(PRODUCT_ATTRIBUTES) if bits >> j & 1))
        for bits in range(1 << len(PRODUCT_ATTRIBUTES))
    ],
    dtype=object,
)


def changed_attributes(previous: np.ndarray, current: np.ndarray) -> pd.Series:
    """Per row, the comma-joined names of the attributes whose hashes differ ("" when none)."""
    weights = np.uint64(1) << np.arange(len(PRODUCT_ATTRIBUTES), dtype=np.uint64)
    bits = ((previous != current).astype(np.uint64) * weights).sum(axis=1)
    return pd.Series(_CHANGED_NAMES[bits.astype(np.intp)], dtype="string")


def product_attributes(row: dict) -> dict:
    """A product's attributes as Optiply is sent them (attributes_json's canonical values)."""
    return json.loads(attributes_json(row))


def plan_product_writes(
    payloads: pd.DataFrame,
    delivered: pd.DataFrame,
    existing: pd.DataFrame | None = None,
    match_key: str = "eanCode",
    adopt_existing: bool = False,
) -> pd.DataFrame:
    """Decide per product: create, update (attributes changed), unchanged, take_over, adopt or conflict.

    `delivered` holds remote_id, optiply_id and the attributes_json last sent (the local state): the
    fingerprint of the attributes (`attributes`, see attribute_hashes), or the JSON earlier versions kept.
    `existing` holds Optiply's products (existing_products_frame). For a listing the local state does not
    know, in this order: a product Optiply holds for our coupling under the listing's remoteId is compared
    with it instead of created again; one our coupling holds under the listing's `legacy_remote_id` (the
    old integration's) is taken over (`take_over`, see take_over_successors); with `adopt_existing`, a
    product no coupling of ours claims and whose match key equals ours is adopted. Both PATCH the changed
    attributes and our remoteId. `changed` lists what a write sends.
    """
    plan = payloads.reset_index(drop=True)  # copy-on-write: the columns are copied only if written
    current_hashes = attribute_hashes(plan)
    plan["attributes"] = fingerprints(current_hashes)
    plan["action"] = pd.Series("create", index=plan.index, dtype="string")
    plan["optiply_id"] = pd.Series(pd.NA, index=plan.index, dtype="Int64")
    plan["changed"] = pd.Series("", index=plan.index, dtype="string")
    plan["known_from"] = pd.Series("new", index=plan.index, dtype="string")

    # Known from the local state: compare with what was last sent, attribute by attribute.
    at = first_positions(plan["remoteId"], delivered["remote_id"])  # the first record per remote id
    is_local = at >= 0
    if is_local.any():
        sent = delivered.iloc[at[is_local]]
        previous = stored_attribute_hashes(sent["attributes_json"])
        changed = changed_attributes(previous, current_hashes[is_local])
        plan.loc[is_local, "changed"] = changed.to_numpy()
        plan.loc[is_local, "action"] = np.where(changed.to_numpy() != "", "update", "unchanged")
        plan.loc[is_local, "optiply_id"] = sent["optiply_id"].astype("Int64").to_numpy()
        plan.loc[is_local, "known_from"] = "state"
    is_local = pd.Series(is_local, index=plan.index)

    # Unknown locally: what Optiply holds (few rows except on a first sync or after a lost state).
    existing = existing if existing is not None else existing_products_frame([], 0)
    if len(existing) and (~is_local).any():
        ours = existing[existing["remoteId"].notna()].drop_duplicates("remoteId").set_index("remoteId")
        claimed = set(delivered["optiply_id"].dropna().astype(int)) | set(ours["optiply_id"].astype(int))
        unclaimed = existing[~existing["optiply_id"].isin(claimed) & existing[match_key].notna()]
        by_key = unclaimed.groupby(match_key)["optiply_id"].apply(list).to_dict()
        unknown = plan.index[~is_local]
        found_by_remote_id = plan.loc[unknown, "remoteId"].isin(ours.index)
        # Our coupling's products no listing holds (by the state or its own remoteId): the old integration's.
        taken = set(delivered["optiply_id"].dropna().astype(int)) | set(
            ours.loc[plan.loc[unknown[found_by_remote_id], "remoteId"], "optiply_id"].astype(int)
        )
        legacy = ours[~ours["optiply_id"].isin(taken)]
        successors = take_over_successors(plan.loc[unknown[~found_by_remote_id]], legacy)
        for i in unknown:
            remote_id, key = plan.at[i, "remoteId"], plan.at[i, match_key]
            current = product_attributes(plan.loc[i].to_dict())
            if remote_id in ours.index:
                diff = _changed(json.loads(attributes_json(ours.loc[remote_id].to_dict())), current)
                plan.loc[i, ["action", "optiply_id", "changed", "known_from"]] = [
                    "update" if diff else "unchanged",
                    int(ours.at[remote_id, "optiply_id"]),
                    ",".join(diff),
                    "optiply",
                ]
            elif i in successors:
                old = legacy.loc[successors[i]]
                diff = ["remoteId", *_changed(json.loads(attributes_json(old.to_dict())), current)]
                plan.loc[i, ["action", "optiply_id", "changed", "known_from"]] = [
                    "take_over",
                    int(old["optiply_id"]),
                    ",".join(diff),
                    "optiply",
                ]
            elif adopt_existing and not _is_missing(key) and key in by_key:
                candidates = by_key[key]
                if len(candidates) == 1:
                    optiply_id = int(candidates[0])
                    match = existing[existing["optiply_id"] == optiply_id].iloc[0].to_dict()
                    diff = ["remoteId", *_changed(json.loads(attributes_json(match)), current)]
                    plan.loc[i, ["action", "optiply_id", "changed", "known_from"]] = [
                        "adopt",
                        optiply_id,
                        ",".join(diff),
                        "optiply",
                    ]
                    by_key.pop(key)  # one Optiply product is adopted by one listing only
                else:
                    plan.loc[i, ["action", "changed", "known_from"]] = [
                        "conflict",
                        f"{match_key} {key} is on Optiply products {sorted(candidates)}",
                        "optiply",
                    ]
    return plan


def take_over_successors(listings: pd.DataFrame, legacy: pd.DataFrame) -> dict[int, str]:
    """Which listing takes over each product the old integration left: listing index -> its old remoteId.

    `legacy` holds our coupling's products no listing holds yet, indexed by remoteId. The old integration
    made one product per ASIN (per marketplace); of the ASIN's listings, the one whose SKU is the product's
    skuCode takes it over (the product already stands for that SKU), else the lowest SKU in code-point
    order. The ASIN's other listings get products of their own.
    """
    candidates = listings[listings["legacy_remote_id"].isin(legacy.index)]
    successors: dict[int, str] = {}
    for legacy_id, group in candidates.groupby("legacy_remote_id", sort=False):
        old_sku = legacy.at[legacy_id, "skuCode"]
        same_sku = group.index[group["skuCode"].astype(object) == old_sku] if not _is_missing(old_sku) else []
        successor = same_sku[0] if len(same_sku) else group.sort_values("skuCode", kind="stable").index[0]
        successors[successor] = legacy_id
    return successors


def _changed(previous: dict, current: dict) -> list[str]:
    return sorted(k for k in PRODUCT_ATTRIBUTES if previous.get(k) != current.get(k))


def existing_sell_orders_frame(held: dict[str, int], orders: pd.DataFrame) -> pd.DataFrame:
    """Of Optiply's sell orders (remoteId -> id), the ones the orders report names, one row each."""
    named = set(orders["amazon-order-id"].str.strip()) if len(orders) else set()
    found = sorted(remote_id for remote_id in held if remote_id in named)
    return pd.DataFrame(
        {
            "remoteId": pd.array(found, dtype="string"),
            "optiply_id": pd.array([held[r] for r in found], dtype="Int64"),
        }
    )


def optiply_time(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True, format="ISO8601").dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def deduplicated_order_rows(orders: pd.DataFrame) -> pd.DataFrame:
    """Flat-file order rows have no key; overlapping windows repeat them. Keep the latest row per line."""
    if orders.empty:
        return orders
    ranked = orders.assign(_updated=pd.to_datetime(orders["last-updated-date"], utc=True, format="ISO8601"))
    ranked = ranked.sort_values("_updated", kind="stable")
    return ranked.drop_duplicates(["amazon-order-id", "sku"], keep="last").drop(columns="_updated")


class OwnProducts:
    """Full flavour: a line's product is the one this integration delivered for its SKU in this marketplace."""

    def __init__(self, product_ids: pd.Series, marketplace_id: str, is_main_marketplace: bool) -> None:
        self.product_ids = product_ids  # product remoteId -> Optiply id
        self.marketplace_id, self.is_main = marketplace_id, is_main_marketplace

    def match(self, sku: pd.Series, asin: pd.Series) -> tuple[pd.Series, pd.Series]:
        ids = product_remote_id(sku, self.marketplace_id, self.is_main).map(self.product_ids).astype("Int64")
        problem = ("no Optiply product for SKU " + sku).where(ids.isna()).astype("string")
        return ids, problem


class ExistingProducts:
    """Secondary flavour: a line's product is the ENABLED Optiply product with the line's match key.

    skuCode: the seller SKU. eanCode: any EAN of the line's ASIN (from the catalog identifiers).
    A key found on several products matches none: which one was sold cannot be told.
    """

    def __init__(self, existing: pd.DataFrame, match_key: str, identifiers: pd.DataFrame) -> None:
        self.match_key = match_key
        keyed = existing[existing[match_key].notna()]
        self.ids_by_key = keyed.groupby(match_key)["optiply_id"].apply(list).to_dict()
        self.eans_by_asin = {
            asin: [e for e in (codes or "").split(",") if e]
            for asin, codes in zip(identifiers["asin"], identifiers["ean_codes"].fillna(""), strict=True)
        }

    def _one(self, sku: str, asin: str) -> tuple[int | None, str | None]:
        if self.match_key == "skuCode":
            keys, missing = [sku], f"no ENABLED Optiply product with skuCode {sku}"
        else:
            keys = self.eans_by_asin.get(asin, [])
            if not keys:
                return None, f"ASIN {asin} (SKU {sku}) has no EAN to match on"
            missing = f"no ENABLED Optiply product with eanCode {'/'.join(keys)} (SKU {sku})"
        for key in keys:
            ids = self.ids_by_key.get(key, [])
            if len(ids) == 1:
                return int(ids[0]), None
            if len(ids) > 1:
                return None, f"{self.match_key} {key} is on several Optiply products {sorted(ids)}"
        return None, missing

    def match(self, sku: pd.Series, asin: pd.Series) -> tuple[pd.Series, pd.Series]:
        found = [self._one(s, a) for s, a in zip(sku, asin, strict=True)]
        ids = pd.Series([f[0] for f in found], index=sku.index, dtype="Int64")
        problem = pd.Series([f[1] for f in found], index=sku.index, dtype="string")
        return ids, problem


def sell_order_lines(
    orders: pd.DataFrame,
    products: OwnProducts | ExistingProducts,
    orders_start: pd.Timestamp,
    delivered_order_ids: set[str],
    held_since: pd.Series | None = None,
    now: pd.Timestamp | None = None,
    held_retention: pd.Timedelta = DEFAULT_HELD_RETENTION,
) -> pd.DataFrame:
    """One row per order line with its order's fields and what to do with the order (`disposition`).

    `products` finds each line's Optiply product. `held_since` maps the remoteId of an order held on an
    earlier cycle to when it was first held: held longer than `held_retention` at `now`, it is given up.
    """
    columns = [
        "remoteId",
        "placed",
        "totalValue",
        "sku",
        "asin",
        "productId",
        "quantity",
        "subtotalValue",
        "order_status",
        "last_updated",
        "disposition",
        "problem",
        "held_since",
    ]
    if orders.empty:
        return _typed_lines(pd.DataFrame(columns=columns))
    rows = deduplicated_order_rows(orders)
    qty = pd.to_numeric(rows["quantity"].str.strip(), errors="coerce")
    item_price = parse_amount(rows["item-price"])
    extras = (
        parse_amount(rows["shipping-price"]).fillna(0)
        + parse_amount(rows["gift-wrap-price"]).fillna(0)
        - parse_amount(rows["item-promotion-discount"]).fillna(0).abs()
        - parse_amount(rows["ship-promotion-discount"]).fillna(0).abs()
    )
    lines = pd.DataFrame(
        {
            "remoteId": rows["amazon-order-id"].str.strip(),
            "placed_at": pd.to_datetime(rows["purchase-date"], utc=True, format="ISO8601"),
            "sku": rows["sku"].str.strip(),
            "asin": rows["asin"].str.strip(),
            "quantity": qty,
            "subtotalValue": item_price.round(2),
            "line_value": item_price + extras,
            "order_status": rows["order-status"].str.strip(),
            "last_updated": rows["last-updated-date"],
        }
    )
    # The order's status is the one on its latest row (all rows of one report agree).
    lines = lines[~((lines["quantity"] == 0) & ~lines["order_status"].isin(CANCELLED_STATUSES))]
    lines["productId"], match_problem = products.match(lines["sku"], lines["asin"])
    lines["placed"] = lines["placed_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    lines["totalValue"] = lines.groupby("remoteId")["line_value"].transform("sum").round(2)

    status = lines["order_status"]
    line_problem = pd.Series(pd.NA, index=lines.index, dtype="string")
    line_problem = line_problem.mask(
        lines["quantity"].isna() | (lines["quantity"] < 0), "unparsable quantity"
    )
    line_problem = line_problem.mask(
        lines["subtotalValue"].isna() & status.isin(DELIVERABLE_STATUSES), "no item-price"
    )
    order_problem = line_problem.groupby(lines["remoteId"]).transform("first")
    unmatched = lines["productId"].isna().groupby(lines["remoteId"]).transform("any")

    disposition = np.select(
        [
            lines["remoteId"].isin(delivered_order_ids),
            lines["placed_at"] < orders_start,
            status.isin(CANCELLED_STATUSES),
            status.isin(WAITING_STATUSES),
            order_problem.notna(),
            ~status.isin(DELIVERABLE_STATUSES),
            unmatched,
        ],
        SKIP_OR_HOLD_DISPOSITIONS,
        default="deliver",
    )
    lines["disposition"] = disposition
    lines["problem"] = order_problem.mask(
        (lines["disposition"] == "unmatched") & lines["productId"].isna(), match_problem
    )
    first_held = held_since.to_dict() if held_since is not None else {}
    since = pd.to_datetime(
        pd.Series([first_held.get(r) for r in lines["remoteId"]], index=lines.index), utc=True
    )
    is_held = lines["disposition"].isin(HELD_DISPOSITIONS)
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    lines.loc[is_held & (since <= now - held_retention), "disposition"] = GIVEN_UP
    lines["held_since"] = since.dt.strftime("%Y-%m-%dT%H:%M:%SZ").where(is_held)
    return _typed_lines(lines[columns])


def _typed_lines(lines: pd.DataFrame) -> pd.DataFrame:
    return lines.astype(
        {
            "remoteId": "string",
            "placed": "string",
            "totalValue": "float64",
            "sku": "string",
            "asin": "string",
            "productId": "Int64",
            "quantity": "Int64",
            "subtotalValue": "float64",
            "order_status": "string",
            "last_updated": "string",
            "disposition": "string",
            "problem": "string",
            "held_since": "string",
        }
    ).reset_index(drop=True)


def sell_order_payload(order_lines: pd.DataFrame) -> dict:
    """The JSON:API attributes of one sell order from its lines (all with disposition `deliver`)."""
    first = order_lines.iloc[0]
    return {
        "remoteId": str(first["remoteId"]),
        "placed": str(first["placed"]),
        "totalValue": round(float(first["totalValue"]), 2),
        "orderLines": [
            {
                "productId": int(r.productId),
                "quantity": int(r.quantity),
                "subtotalValue": round(float(r.subtotalValue), 2),
            }
            for r in order_lines.itertuples(index=False)
        ],
    }
