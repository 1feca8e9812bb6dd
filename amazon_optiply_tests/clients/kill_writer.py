"""A delivery of N products with 8 writes in flight, for test_optiply_write_rate to SIGKILL midway.

Usage: python kill_writer.py <sandbox base url> <state database url> <n>
"""

from __future__ import annotations

import sys

from amazon_optiply.clients.optiply import OptiplyClient
from amazon_optiply.delivery import deliver_records
from amazon_optiply.sandbox.optiply import TOKEN_PATH
from amazon_optiply.state import SyncState


def main(base_url: str, database: str, n: int) -> None:
    state = SyncState(database)
    client = OptiplyClient(
        f"{base_url}/v1",
        f"{base_url}{TOKEN_PATH}",
        "rate@example.com",
        "pw-rate",
        "client-rate",
        "secret-rate",
        3,
        42,
        token_store=state.token_store("optiply"),
        min_write_interval=0.01,
        max_concurrent_writes=8,
        timeout=10,
    )
    desired = [
        {"name": f"Product {i}", "stockLevel": i, "price": 1.25, "remoteId": f"B0{i:08d}"} for i in range(n)
    ]
    deliver_records(client, state, "products", "ATVPDKIKX0DER", desired)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
