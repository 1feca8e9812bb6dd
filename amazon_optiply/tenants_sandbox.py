"""`python -m amazon_optiply.tenants_sandbox`: the registry `make run` starts with, printed as YAML.

Two tenants: `default`, the seller the environment describes (exactly what the platform makes of the
README's variables without a registry), and `vendor-sandbox`, the sandbox's Vendor Central account at
VENDOR_SP_API / VENDOR_OPTIPLY (its own Optiply account).
"""

from __future__ import annotations

import os
import sys

import yaml

from amazon_optiply.tenants import Tenant, environment_tenant


def sandbox_registry() -> dict:
    optiply = os.environ["VENDOR_OPTIPLY"]  # .../v1
    vendor = Tenant(
        name="vendor-sandbox",
        integration="vendor",
        marketplaces=["DE"],
        optiply_account_id=1,
        optiply_coupling_id=42,
        endpoints={
            "sp_api_endpoint": os.environ["VENDOR_SP_API"],
            "lwa_token_url": f"{os.environ['VENDOR_SP_API']}/auth/o2/token",
            "optiply_api_url": optiply,
            "optiply_token_url": optiply.removesuffix("/v1") + "/api/auth/oauth/token",
        },
    )
    tenants = [environment_tenant(), vendor]
    return {"tenants": [t.model_dump(exclude_defaults=True) for t in tenants]}


if __name__ == "__main__":
    yaml.safe_dump(sandbox_registry(), sys.stdout, sort_keys=False)
