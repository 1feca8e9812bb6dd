"""Which vendor assets each vendor flavour's job materializes."""

import dagster as dg

VENDOR_GROUPS = ("vendor_amazon", "vendor_optiply")

# sell_orders_only: Amazon's purchase orders become the vendor's sell orders, matched by EAN to the
# products another system (the parent account) created; nothing else is read or written.
SELL_ORDERS_ONLY_ASSETS = ("vendor_existing_products", "vendor_sell_order_payloads", "vendor_sell_orders")
VENDOR_SELL_ORDERS_SIDE = dg.AssetSelection.assets("vendor_purchase_orders", *SELL_ORDERS_ONLY_ASSETS)
# full: Optiply models Amazon's stock of the vendor's products; its sell orders are Amazon's customer demand.
VENDOR_FULL = dg.AssetSelection.groups(*VENDOR_GROUPS) - dg.AssetSelection.assets(*SELL_ORDERS_ONLY_ASSETS)
