"""Asset values as Parquet files, one per asset and marketplace partition (no pickles)."""

from __future__ import annotations

import dagster as dg
import pandas as pd
from upath import UPath


class PandasParquetIOManager(dg.UPathIOManager):
    extension = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        obj.to_parquet(path, index=False)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        return pd.read_parquet(path)


class ParquetIOManager(dg.ConfigurableIOManagerFactory):
    """Stores under `base_path` (default: the Dagster instance's storage directory)."""

    base_path: str = ""

    def create_io_manager(self, context: dg.InitResourceContext) -> PandasParquetIOManager:
        base = self.base_path or (context.instance.storage_directory() if context.instance else "storage")
        return PandasParquetIOManager(base_path=UPath(base) / "parquet")
