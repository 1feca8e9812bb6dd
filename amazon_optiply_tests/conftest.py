"""Test-wide settings: the marketplace partitions are read from the environment when definitions load."""

import os

# Partitions are fixed when amazon_optiply.partitions is imported; every test shares these two marketplaces.
os.environ.setdefault("AMAZON_MARKETPLACES", "DE,US")
os.environ.pop("SP_API_DEFAULT_MARKETPLACE", None)  # python-amazon-sp-api would override every marketplace
