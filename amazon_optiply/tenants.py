"""The tenants this deployment serves: one per Optiply account, each with its Amazon authorisation and settings.

A tenant is data, not code. The registry is a YAML file (`TENANTS_FILE`), read again whenever it is needed,
so adding, pausing or removing a tenant needs no restart. With no registry, the environment variables in
the README define one tenant, `default`. Secrets are never in the registry: it names the environment
variables that hold them, resolved only inside a run.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from amazon_optiply.marketplaces import MARKETPLACES
from amazon_optiply.partitions import PARTITIONS_OF, SettingError, marketplace_codes

DEFAULT_TENANT = "default"
# Each integration's flavours: which entities a tenant's runs write (see the README).
FLAVOURS = {"seller": ("full", "secondary"), "vendor": ("full", "sell_orders_only")}
TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
PARTITION_SEPARATOR = "/"

# Each secret a tenant needs, and the environment variable that holds it for the environment-defined tenant.
SECRET_ENV_DEFAULTS = {
    "sp_api_refresh_token": "SP_API_REFRESH_TOKEN",
    "lwa_app_id": "LWA_APP_ID",
    "lwa_client_secret": "LWA_CLIENT_SECRET",
    "optiply_username": "OPTIPLY_USERNAME",
    "optiply_password": "OPTIPLY_PASSWORD",
    "optiply_client_id": "OPTIPLY_CLIENT_ID",
    "optiply_client_secret": "OPTIPLY_CLIENT_SECRET",
}

# Per-tenant settings and the environment variable each one is read from for the environment-defined tenant.
SETTING_ENV = {
    "flavour": "OPTIPLY_FLAVOUR",
    "match_key": "OPTIPLY_MATCH_KEY",
    "seller_central_url": "AMAZON_SELLER_CENTRAL_URL",
    "main_marketplace": "AMAZON_MAIN_MARKETPLACE",
    "stock_source": "AMAZON_STOCK_SOURCE",
    "pan_eu_stock": "AMAZON_PAN_EU_STOCK",
    "orders_start": "ORDERS_START",
    "orders_lookback_days": "ORDERS_LOOKBACK_DAYS",
    "orders_overlap_minutes": "ORDERS_OVERLAP_MINUTES",
    "held_order_retention_days": "HELD_ORDER_RETENTION_DAYS",
    "catalog_refresh_days": "CATALOG_REFRESH_DAYS",
    "fba_full_refresh_hours": "FBA_FULL_REFRESH_HOURS",
    "max_bad_row_share": "MAX_BAD_ROW_SHARE",
    "count_inbound": "AMAZON_COUNT_INBOUND",
    "count_awd": "AMAZON_COUNT_AWD",
    # Vendor tenants (see the README's vendor section).
    "purchase_order_lookback_days": "VENDOR_PURCHASE_ORDER_LOOKBACK_DAYS",
    "distributor_view": "VENDOR_DISTRIBUTOR_VIEW",
    "selling_program": "VENDOR_SELLING_PROGRAM",
}

# Where a tenant's APIs are: deployment-wide from the environment, overridable per tenant (a proxy, a sandbox).
ENDPOINT_ENV = {
    "sp_api_endpoint": "SP_API_ENDPOINT",
    "lwa_token_url": "LWA_TOKEN_URL",
    "optiply_api_url": "OPTIPLY_API_URL",
    "optiply_token_url": "OPTIPLY_TOKEN_URL",
}


# The names each map of a tenant's entry takes.
KNOWN_NAMES = {"secrets": SECRET_ENV_DEFAULTS, "settings": SETTING_ENV, "endpoints": ENDPOINT_ENV}

ENV_NAMES = {
    "marketplaces": "AMAZON_MARKETPLACES",
    "optiply_account_id": "OPTIPLY_ACCOUNT_ID",
    "optiply_coupling_id": "OPTIPLY_COUPLING_ID",
}


class Tenant(BaseModel):
    """One Optiply account fed from one Amazon authorisation."""

    model_config = ConfigDict(extra="forbid")

    name: str
    integration: Literal["seller", "vendor"] = "seller"
    marketplaces: list[str]
    optiply_account_id: int
    optiply_coupling_id: int
    paused: bool = False
    # Secret name -> the environment variable holding it; missing names fall back to SECRET_ENV_DEFAULTS.
    secrets: dict[str, str] = Field(default_factory=dict)
    # Setting name (a key of SETTING_ENV) -> value; missing ones take the README's defaults.
    settings: dict[str, str | int | float] = Field(default_factory=dict)
    endpoints: dict[str, str] = Field(default_factory=dict)
    # Where this tenant's sync state lives; default: its own SQLite file under DAGSTER_HOME.
    state_database_url: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not TENANT_NAME.match(value):
            raise ValueError(
                f"tenant name {value!r} must be lower-case letters, digits, '-' or '_' (at most 48)"
            )
        return value

    @field_validator("marketplaces", mode="before")
    @classmethod
    def _marketplaces(cls, value: object) -> list[str]:
        codes = marketplace_codes(value) if isinstance(value, str) else [str(c).upper() for c in value]
        unknown = [c for c in codes if c not in MARKETPLACES]
        if not codes or unknown:
            raise ValueError(f"marketplaces must be known country codes, e.g. [DE, FR]; unknown: {unknown}")
        return codes

    @field_validator("secrets", "settings", "endpoints")
    @classmethod
    def _known_names(cls, value: dict, info: ValidationInfo) -> dict:
        """Each of these maps takes only the names this platform knows: a typo is an error, not a default."""
        known = KNOWN_NAMES[info.field_name]
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown {info.field_name} {unknown}; known: {sorted(known)}")
        return value

    @model_validator(mode="after")
    def _integration_rules(self) -> Tenant:
        if self.integration == "vendor" and len(self.marketplaces) != 1:
            raise ValueError(
                "a vendor tenant is one Vendor Central account with exactly one marketplace (its reports' "
                f"one marketplaceId; its purchase orders cover the region), got {self.marketplaces}"
            )
        if self.flavour not in FLAVOURS[self.integration]:
            raise ValueError(
                f"flavour of a {self.integration} tenant must be one of {list(FLAVOURS[self.integration])}, "
                f"not {self.flavour!r}"
            )
        return self

    def partition_keys(self) -> list[str]:
        return [partition_key(self.name, code) for code in self.marketplaces]

    @property
    def partitions_name(self) -> str:
        """The dynamic partitions its keys belong to: sellers' and vendors' assets have their own."""
        return PARTITIONS_OF[self.integration]

    @property
    def flavour(self) -> str:
        """Which job its runs use: seller full or secondary (sell orders only); vendor full or sell_orders_only."""
        return str(self.setting("flavour", "full"))

    def secret_variable(self, name: str) -> str:
        """The environment variable holding a secret (safe to show: a name, not the value)."""
        return self.secrets.get(name, SECRET_ENV_DEFAULTS[name])

    def secret(self, name: str) -> str:
        """A secret's value, from the environment variable the registry names. Only ever called inside a run."""
        variable = self.secret_variable(name)
        value = os.environ.get(variable)
        if not value:
            raise SettingError(
                f"tenant {self.name}: the environment variable {variable} (its {name}) is not set"
            )
        return value

    def endpoint(self, name: str) -> str:
        return self.endpoints.get(name) or os.environ.get(ENDPOINT_ENV[name], "")

    def setting(self, name: str, default: str | int | float) -> str | int | float:
        value = self.settings.get(name)
        return default if value is None or value == "" else value


def partition_key(tenant: str, marketplace: str) -> str:
    return f"{tenant}{PARTITION_SEPARATOR}{marketplace}"


def split_partition_key(key: str) -> tuple[str, str]:
    """`acme/DE` -> ("acme", "DE")."""
    tenant, separator, marketplace = key.partition(PARTITION_SEPARATOR)
    if not separator or marketplace not in MARKETPLACES:
        raise SettingError(f"partition {key!r} is not <tenant>/<marketplace code>, e.g. acme/DE")
    return tenant, marketplace


def environment_tenant() -> Tenant:
    """The one tenant a deployment configured through the README's environment variables has."""
    env = os.environ
    missing = [
        v for v in ("AMAZON_MARKETPLACES", "OPTIPLY_ACCOUNT_ID", "OPTIPLY_COUPLING_ID") if not env.get(v)
    ]
    if missing:
        raise SettingError(f"no tenant registry (TENANTS_FILE) and {', '.join(missing)} not set")
    try:
        return Tenant(
            name=DEFAULT_TENANT,
            marketplaces=env["AMAZON_MARKETPLACES"],
            optiply_account_id=env["OPTIPLY_ACCOUNT_ID"],
            optiply_coupling_id=env["OPTIPLY_COUPLING_ID"],
            settings={name: env[variable] for name, variable in SETTING_ENV.items() if env.get(variable)},
            state_database_url=env.get("SYNC_STATE_DATABASE_URL", ""),
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_NAMES.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in exc.errors()
        )
        raise SettingError(f"the environment's tenant is invalid: {problems}") from None


class TenantRegistry:
    """The tenants, read from TENANTS_FILE, or the environment's one tenant when there is no file."""

    def __init__(self, tenants: list[Tenant], path: Path | None = None) -> None:
        names = [t.name for t in tenants]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise SettingError(f"{path or 'the tenant registry'}: tenant name(s) {doubled} given twice")
        self.path = path
        self.tenants = {t.name: t for t in tenants}

    @classmethod
    def load(cls, path: str | Path | None = None) -> TenantRegistry:
        path = path or os.environ.get("TENANTS_FILE")
        if not path:
            return cls([environment_tenant()])
        path = Path(path)
        if not path.exists():
            return cls([], path)
        raw = yaml.safe_load(path.read_text()) or {}
        tenants = []
        for i, entry in enumerate(raw.get("tenants") or []):
            try:
                tenants.append(Tenant.model_validate(entry))
            except ValidationError as exc:
                label = entry.get("name", f"#{i + 1}") if isinstance(entry, dict) else f"#{i + 1}"
                raise SettingError(f"{path}: tenant {label}: {exc}") from None
        return cls(tenants, path)

    def save(self) -> None:
        if self.path is None:
            raise SettingError("the tenants come from the environment: set TENANTS_FILE to keep a registry")
        entries = [t.model_dump(exclude_defaults=True) for t in self.tenants.values()]
        self.path.write_text(yaml.safe_dump({"tenants": entries}, sort_keys=False, allow_unicode=True))

    def tenant(self, name: str) -> Tenant:
        try:
            return self.tenants[name]
        except KeyError:
            raise SettingError(f"no tenant {name!r} in {self.path or 'the environment'}") from None

    def active_partition_keys(self) -> list[str]:
        """tenant/marketplace of every tenant not paused: what the schedule syncs."""
        return [key for t in self.tenants.values() if not t.paused for key in t.partition_keys()]

    def partition_keys(self) -> list[str]:
        """Every tenant/marketplace, paused ones too: their history stays visible."""
        return [key for t in self.tenants.values() for key in t.partition_keys()]

    def partition_changes(
        self, existing: list[str], integration: str = "seller"
    ) -> tuple[list[str], list[str]]:
        """(keys to add, keys to delete) to make one integration's existing partitions the registry's."""
        wanted = [
            k for t in self.tenants.values() if t.integration == integration for k in t.partition_keys()
        ]
        return [k for k in wanted if k not in existing], [k for k in existing if k not in wanted]


# ---- command line: python -m amazon_optiply.tenants ---------------------------------------------------------


def _pairs(values: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, separator, setting = value.partition("=")
        if not separator:
            raise SettingError(f"--{what} takes name=value, got {value!r}")
        pairs[name] = setting
    return pairs


def tenant_state(tenant: Tenant):
    from amazon_optiply.resources import default_state_url
    from amazon_optiply.state import open_state

    return open_state(tenant.state_database_url or default_state_url(tenant.name))


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m amazon_optiply.tenants",
        description="The tenant registry (TENANTS_FILE): list, add, pause, resume, remove, export and delete "
        "tenants. The running platform picks changes up within a minute (the tenant_registry sensor).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every tenant, its marketplaces, flavour and whether it is paused")
    commands.add_parser(
        "status",
        help="per tenant-marketplace: failing, late (no success for an hour), never synced or ok, from the "
        "Dagster instance's run history; exits 1 when any is failing or late",
    )
    commands.add_parser(
        "partitions",
        help="make the Dagster instance's partitions the registry's now (the tenant_registry sensor does it "
        "within a minute while the daemon runs); needed before `dg launch` of a new tenant without a daemon",
    )
    add = commands.add_parser("add", help="register a tenant")
    add.add_argument("name")
    add.add_argument("--marketplaces", required=True, help="country codes, e.g. DE,FR")
    add.add_argument("--account-id", type=int, required=True, help="its Optiply account id")
    add.add_argument("--coupling-id", type=int, required=True, help="its Optiply coupling id")
    add.add_argument(
        "--secret",
        action="append",
        default=[],
        help="secret=ENV_VAR, e.g. sp_api_refresh_token=ACME_SP_API_REFRESH_TOKEN",
    )
    add.add_argument("--setting", action="append", default=[], help="setting=value, e.g. flavour=secondary")
    add.add_argument("--endpoint", action="append", default=[], help="endpoint=URL, e.g. optiply_api_url=...")
    for command, text in (
        ("pause", "stop its runs, keep its partitions and state"),
        ("resume", "run it again"),
        ("remove", "drop it from the registry; its state stays"),
    ):
        commands.add_parser(command, help=text).add_argument("name")
    export = commands.add_parser("export", help="its registry entry and every state table, as YAML and CSV")
    export.add_argument("name")
    export.add_argument("--to", type=Path, required=True, help="a folder to write into")
    delete = commands.add_parser("delete", help="a customer leaving: drop its state and its registry entry")
    delete.add_argument("name")
    args = parser.parse_args(argv)

    try:
        registry = TenantRegistry.load()
        if args.command == "list":
            for t in registry.tenants.values():
                state = "paused" if t.paused else "active"
                print(f"{t.name}\t{t.integration}\t{','.join(t.marketplaces)}\t{t.flavour}\t{state}")
            return 0
        if args.command == "status":
            import dagster as dg

            from amazon_optiply.operator_view import tenant_statuses

            with dg.DagsterInstance.get() as instance:
                rows = tenant_statuses(instance, list(registry.tenants.values()))
            now = datetime.now(UTC)
            for row in rows:
                print(row.line(now))
            return 1 if any(r.verdict in ("failing", "late") for r in rows) else 0
        if args.command == "partitions":
            import dagster as dg

            added, removed = [], []
            with dg.DagsterInstance.get() as instance:
                for integration, partitions in PARTITIONS_OF.items():
                    new, gone = registry.partition_changes(
                        instance.get_dynamic_partitions(partitions), integration
                    )
                    instance.add_dynamic_partitions(partitions, new)
                    for key in gone:
                        instance.delete_dynamic_partition(partitions, key)
                    added, removed = added + new, removed + gone
            print(f"partitions: added {added or 'none'}, removed {removed or 'none'}")
            return 0
        if args.command == "add":
            if args.name in registry.tenants:
                raise SettingError(f"tenant {args.name!r} is already registered")
            tenant = Tenant(
                name=args.name,
                marketplaces=args.marketplaces,
                optiply_account_id=args.account_id,
                optiply_coupling_id=args.coupling_id,
                secrets=_pairs(args.secret, "secret"),
                settings=_pairs(args.setting, "setting"),
                endpoints=_pairs(args.endpoint, "endpoint"),
            )
            registry.tenants[tenant.name] = tenant
        elif args.command in ("pause", "resume"):
            registry.tenants[args.name] = registry.tenant(args.name).model_copy(
                update={"paused": args.command == "pause"}
            )
        elif args.command == "remove":
            registry.tenant(args.name)
            del registry.tenants[args.name]
        elif args.command == "export":
            tenant = registry.tenant(args.name)
            args.to.mkdir(parents=True, exist_ok=True)
            (args.to / "tenant.yaml").write_text(yaml.safe_dump(tenant.model_dump(), sort_keys=False))
            for table, frame in tenant_state(tenant).export_tables().items():
                frame.to_csv(args.to / f"{table}.csv", index=False)
            print(f"exported {tenant.name} to {args.to}")
            return 0
        elif args.command == "delete":
            tenant = registry.tenant(args.name)
            tenant_state(tenant).drop_everything()
            del registry.tenants[args.name]
        registry.save()
        print(f"{args.command}: {args.name} ({registry.path})")
        return 0
    except (SettingError, ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
