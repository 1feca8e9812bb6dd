"""One partition per Amazon marketplace the seller syncs, named by country code (AMAZON_MARKETPLACES)."""

from __future__ import annotations

import os

import dagster as dg

from amazon_optiply.marketplaces import MARKETPLACES


class SettingError(ValueError):
    """A setting is missing or invalid; the message names it."""


def marketplace_codes(raw: str) -> list[str]:
    """AMAZON_MARKETPLACES as country codes: "de, FR" -> ["DE", "FR"]."""
    return [c.strip().upper() for c in raw.split(",") if c.strip()]


def configured_marketplaces() -> list[str]:
    codes = marketplace_codes(os.environ.get("AMAZON_MARKETPLACES", ""))
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
