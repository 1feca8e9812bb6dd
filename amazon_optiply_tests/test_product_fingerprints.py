"""Change detection by attribute fingerprints, and a state written by the JSON-keeping versions before it."""

import json

import numpy as np
import pandas as pd

from amazon_optiply.transforms.optiply import (
    FINGERPRINT_PREFIX,
    PRODUCT_ATTRIBUTES,
    attribute_hashes,
    existing_products_frame,
    fingerprints,
    plan_product_writes,
    stored_attribute_hashes,
)

STATE_COLUMNS = ["remote_id", "optiply_id", "attributes_json"]


def payloads(**changes: list) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "remoteId": pd.array(["SKU-1", "SKU-2", "SKU-3"], dtype="string"),
            "name": pd.array(["Müller Becher", 'Tasse "gross" €', "Teller"], dtype="string"),
            "skuCode": pd.array(["SKU-1", "SKU-2", "SKU-3"], dtype="string"),
            "eanCode": pd.array(["4000000000017", None, "4000000000031"], dtype="string"),
            "price": [12.5, 3.0, 0.1],
            "stockLevel": np.array([3, 0, 120], dtype="int64"),
            "legacy_remote_id": pd.array(["B01", "B02", "B03"], dtype="string"),
        }
    )
    for name, values in changes.items():
        frame[name] = pd.Series(values, dtype=frame[name].dtype)
    return frame


def legacy_json(frame: pd.DataFrame) -> list[str]:
    """attributes_json as the versions before fingerprints stored it (their _attributes_column)."""
    return [
        json.dumps(
            {
                "eanCode": None if pd.isna(r["eanCode"]) else r["eanCode"],
                "name": r["name"],
                "price": float(round(r["price"], 2)),
                "skuCode": r["skuCode"],
                "stockLevel": int(r["stockLevel"]),
            },
            ensure_ascii=False,
        )
        for r in frame.to_dict("records")
    ]


def state(frame: pd.DataFrame, stored: list) -> pd.DataFrame:
    return pd.DataFrame(
        {"remote_id": frame["remoteId"], "optiply_id": [11, 12, 13], "attributes_json": stored}
    )


def plan(current: pd.DataFrame, delivered: pd.DataFrame) -> pd.DataFrame:
    return plan_product_writes(current, delivered, existing_products_frame([], 42))


def test_fingerprints_read_back_to_the_same_hashes():
    hashes = attribute_hashes(payloads())
    stored = fingerprints(hashes)
    assert stored.str.startswith(FINGERPRINT_PREFIX).all()
    assert (stored_attribute_hashes(stored) == hashes).all()


def test_a_fingerprint_is_the_same_across_versions():
    """Pinned as this version computes it: a library changing its hashes would PATCH every product once."""
    one = payloads().iloc[[0]]
    assert fingerprints(attribute_hashes(one)).iloc[0] == (
        "h1:81d51910bb4d39799d0310287e2366378a5a078de16025e1395c60e6503ea9db5d6cf49715f9423d"
    )


def test_unchanged_products_are_left_alone_and_changes_named():
    first = plan(payloads(), state(payloads(), [None] * 3))
    assert first["action"].tolist() == ["update"] * 3  # nothing on record of what they hold
    delivered = state(payloads(), first["attributes"].tolist())
    assert plan(payloads(), delivered)["action"].tolist() == ["unchanged"] * 3

    changed = plan(
        payloads(stockLevel=[3, 5, 120], name=["Müller Becher", 'Tasse "gross" €', "Platte"]), delivered
    )
    assert changed["action"].tolist() == ["unchanged", "update", "update"]
    assert changed["changed"].tolist() == ["", "stockLevel", "name"]
    assert changed["optiply_id"].tolist() == [11, 12, 13]


def test_a_state_written_as_json_compares_as_before_after_an_upgrade():
    """The first run after the upgrade: no product PATCHed for nothing, no change missed."""
    delivered = state(payloads(), legacy_json(payloads()))
    same = plan(payloads(), delivered)
    assert same["action"].tolist() == ["unchanged"] * 3
    assert same["known_from"].tolist() == ["state"] * 3

    current = payloads(eanCode=["4000000000017", "4000000000024", None], price=[12.5, 3.0, 0.2])
    changed = plan(current, delivered)
    assert changed["action"].tolist() == ["unchanged", "update", "update"]
    assert changed["changed"].tolist() == ["", "eanCode", "eanCode,price"]

    # Fingerprints and JSON side by side (only the written products get fingerprints).
    mixed = state(payloads(), [legacy_json(payloads())[0], *fingerprints(attribute_hashes(payloads()))[1:]])
    assert plan(payloads(), mixed)["action"].tolist() == ["unchanged"] * 3


def test_an_absent_attribute_differs_from_any_value():
    absent = payloads(eanCode=[None, None, None])
    texts = payloads(eanCode=["None", "", "nan"])
    hashes = attribute_hashes(absent)
    assert (hashes[:, PRODUCT_ATTRIBUTES.index("eanCode")] != attribute_hashes(texts)[:, 2]).all()
    assert (stored_attribute_hashes(pd.Series(legacy_json(absent))) == hashes).all()
