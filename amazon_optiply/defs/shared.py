"""What every integration's delivery assets share: lateness, Optiply's write pool, what a run wrote."""

from datetime import timedelta

import dagster as dg
import pandas as pd

# A delivery older than an hour (two missed 30-minute cycles) is late: the asset turns red in the UI.
DELIVERY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=60))
# Optiply's rate limit is one for all tenants (one API): every delivery step of every run takes a slot of
# this pool, so the deployment's writes stay within slots x the client's spacing, however many runs go.
OPTIPLY_WRITES_POOL = "optiply_writes"


def writes_frame(report) -> pd.DataFrame:
    """What this run wrote to Optiply: the row count and preview of a delivery asset."""
    return pd.DataFrame(report.written, columns=["remoteId", "optiply_id", "action"])
