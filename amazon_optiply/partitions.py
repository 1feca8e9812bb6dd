"""One partition per Amazon marketplace the seller syncs, named by country code (AMAZON_MARKETPLACES)."""

from __future__ import annotations

import os

import dagster as dg

from amazon_optiply.marketplaces import MARKETPLACES


class SettingError(ValueError):
    """A setting is missing or invalid; the message names it."""


def configured_marketplaces() -> list[str]:
    raw = os.environ.get("AMAZON_MARKETPLACES", "")
    codes = [c.strip().upper() for c in raw.split(",") if c.strip()]
    if not codes:
        raise SettingError(
            "AMAZON_MARKETPLACES is not set: give the seller's marketplaces as country codes, e.g. DE,FR"
        )
    unknown = [c for c in codes if c not in MARKETPLACES]
    if unknown:
        raise SettingError(
            f"AMAZON_MARKETPLACES holds unknown marketplace code(s) {unknown}; known: {', '.join(MARKETPLACES)}"
        )
    return codes


marketplace_partitions = dg.StaticPartitionsDefinition(configured_marketplaces())
