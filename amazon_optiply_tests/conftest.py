"""Test-wide settings: the marketplace partitions are read from the environment when definitions load."""

import os

# Partitions are fixed when amazon_optiply.partitions is imported, so every marketplace a test's seller uses
# is here: DE and US (the usual harness), JP and AU (the Far East seller with Amazon JP's localized reports).
os.environ.setdefault("AMAZON_MARKETPLACES", "DE,US,JP,AU")
os.environ.pop("SP_API_DEFAULT_MARKETPLACE", None)  # python-amazon-sp-api would override every marketplace
