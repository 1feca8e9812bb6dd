"""Pure transforms: DataFrames in, DataFrames out. Importing them chooses Arrow's memory pool."""

import contextlib
import os

import pyarrow as pa

# Arrow's jemalloc pool gives freed memory back to the system after a short decay; its default (mimalloc)
# keeps it for reuse, which at 1M listings held ~130 MB more at the peak (bench `transform`). An operator's
# ARROW_DEFAULT_MEMORY_POOL is left alone; a pyarrow built without jemalloc keeps its default.
if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
    with contextlib.suppress(NotImplementedError):
        pa.set_memory_pool(pa.jemalloc_memory_pool())
