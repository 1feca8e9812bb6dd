"""A process opens each state database once (engine, pool, table checks), keeps a few, and a forked child
opens its own."""

import multiprocessing
from datetime import UTC, datetime

import pandas as pd

from amazon_optiply import state

IDENTIFIERS = pd.DataFrame(
    [{"asin": "B0TEST0001", "ean_codes": "4006381333931", "upc_codes": "", "item_name": "x"}]
)


def _opened_again_in_child(url: str, parent_id: int, answer) -> None:
    answer.put(id(state.open_state(url)) != parent_id)


def test_a_state_database_is_opened_once_a_process_and_the_least_used_beyond_the_limit_is_closed(tmp_path):
    urls = [f"sqlite:///{tmp_path}/tenant-{i}.sqlite" for i in range(state.OPEN_STATES + 2)]
    first = state.open_state(urls[0])
    assert state.open_state(urls[0]) is first
    for url in urls[1:]:
        state.open_state(url)
    assert state.open_state(urls[0]) is not first  # closed beyond the limit: the next open builds it again
    first.store_identifiers("DE", IDENTIFIERS, datetime.now(UTC))  # and its holder can still use it
    assert list(state.open_state(urls[0]).cached_identifiers("DE")["asin"]) == ["B0TEST0001"]

    fork = multiprocessing.get_context("fork")
    answer = fork.Queue()
    parent_id = id(state.open_state(urls[-1]))
    child = fork.Process(target=_opened_again_in_child, args=(urls[-1], parent_id, answer))
    child.start()
    child.join(30)
    assert answer.get(timeout=5) is True


def test_a_state_database_file_deleted_since_is_opened_again(tmp_path):
    url = f"sqlite:///{tmp_path}/tenant.sqlite"
    first = state.open_state(url)
    first.store_identifiers("DE", IDENTIFIERS, datetime.now(UTC))
    (tmp_path / "tenant.sqlite").unlink()  # a lost volume: a new, empty database from here on
    again = state.open_state(url)
    assert again is not first
    assert again.cached_identifiers("DE").empty
    again.store_identifiers("DE", IDENTIFIERS, datetime.now(UTC))
    assert state.open_state(url) is again
