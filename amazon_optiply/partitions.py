"""The partitions: one per tenant and Amazon marketplace, keyed `<tenant>/<marketplace code>`."""

from __future__ import annotations

import dagster as dg


class SettingError(ValueError):
    """A setting is missing or invalid; the message names it."""


def marketplace_codes(raw: str) -> list[str]:
    """AMAZON_MARKETPLACES as country codes: "de, FR" -> ["DE", "FR"]."""
    return [c.strip().upper() for c in raw.split(",") if c.strip()]


# One partition per tenant and marketplace that exists, keyed `<tenant>/<marketplace>` (e.g. acme/DE).
# Dynamic, not a multi-partition: a tenant x marketplace grid would show every tenant in every marketplace.
# The `tenant_registry` sensor (and `python -m amazon_optiply.sync`) keeps the keys equal to the registry's.
TENANT_MARKETPLACES = "tenant_marketplaces"
marketplace_partitions = dg.DynamicPartitionsDefinition(name=TENANT_MARKETPLACES)

# Vendor tenants have partitions of their own, so a seller asset never lists a vendor's key and back. A
# vendor tenant is one Vendor Central account: one region's purchase orders (Amazon's Vendor Orders API has
# no marketplace filter) and the reports of its one marketplace, so its single key `<tenant>/<marketplace>`
# fetches each purchase order once.
VENDOR_ACCOUNTS = "vendor_accounts"
vendor_partitions = dg.DynamicPartitionsDefinition(name=VENDOR_ACCOUNTS)

PARTITIONS_OF = {"seller": TENANT_MARKETPLACES, "vendor": VENDOR_ACCOUNTS}


def marketplace_of(partition_key: str) -> str:
    """The marketplace code of a partition key `<tenant>/<marketplace>`."""
    return partition_key.rpartition("/")[2]
