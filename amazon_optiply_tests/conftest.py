"""Test-wide settings: the marketplace partitions are read from the environment when definitions load."""

import os

# Partitions are fixed when amazon_optiply.partitions is imported, so every marketplace a test's seller uses
# is here: DE and US (the usual harness), JP and AU (the Far East seller with Amazon JP's localized reports).
os.environ.setdefault("AMAZON_MARKETPLACES", "DE,US,JP,AU")
os.environ.pop("SP_API_DEFAULT_MARKETPLACE", None)  # python-amazon-sp-api would override every marketplace


def pytest_configure(config):
    # Fix the partitions now: a test's sandbox narrows AMAZON_MARKETPLACES to its own seller's marketplaces, and
    # the first test to load the definitions would otherwise decide the partitions for the whole session.
    import amazon_optiply.partitions  # noqa: F401
