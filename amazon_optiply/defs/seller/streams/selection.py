"""Which of the tap's other streams run with the 30-minute sync, and which once a day on their own.

Near-real-time streams that feed stock or the orders join the sync. Daily ones (financial events, sales and
traffic, the ledger, customer shipments, the account) run in `seller_daily_streams`, so the sync's duration
and calls never grow with them.
"""

import dagster as dg

from amazon_optiply.defs.seller.streams.api import DAILY_API_STREAMS, NEAR_REAL_TIME_API_STREAMS
from amazon_optiply.defs.seller.streams.reports import DAILY_REPORT_STREAMS, NEAR_REAL_TIME_REPORT_STREAMS

NEAR_REAL_TIME_STREAMS = dg.AssetSelection.assets(*NEAR_REAL_TIME_API_STREAMS, *NEAR_REAL_TIME_REPORT_STREAMS)
# Stock streams feed warehouse_stock (AFN by country for the Pan-EU rule) or sit beside it (AWD, inbound): the
# secondary flavour writes no products, so its job leaves them out.
STOCK_STREAMS = dg.AssetSelection.assets(
    "awd_inventory", "fba_inbound_shipments", *NEAR_REAL_TIME_REPORT_STREAMS
)
DAILY_STREAMS = dg.AssetSelection.assets(*DAILY_API_STREAMS, *DAILY_REPORT_STREAMS)
