"""The Amazon Vendor integration's own code: Vendor Orders access and the pure transforms to Optiply.

What both integrations share (SP-API client and report lifecycle, Optiply client, state, delivery) stays in
`clients/`, `state.py` and `delivery.py`; the vendor's Dagster assets are in `defs/vendor/`.
"""
