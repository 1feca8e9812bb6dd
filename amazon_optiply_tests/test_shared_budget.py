"""A tenant's SP-API budget is one budget for all its run processes (Amazon's limits are per selling partner)."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from amazon_optiply.clients.amazon import LocalBudgetStore
from amazon_optiply.state import SyncState

# Slow enough (1 request/s) that the milliseconds between reservations do not blur the expected slots.
RATE, BURST = 1.0, 2


def _reserve_in_process(database_url: str, n: int, ready, out) -> None:
    store = SyncState(database_url).budget_store()
    ready.wait(timeout=60)  # both processes started and imported: they reserve together
    # Each slot as a moment (now + the wait), so a process that reserves a little later still reads right.
    out.put([time.time() + store.reserve("getReport", RATE, BURST) for _ in range(n)])


def test_two_processes_share_one_tenant_budget(tmp_path):
    """Six requests from two processes get the burst and then one slot per second, as one process would."""
    url = f"sqlite:///{tmp_path / 'sync_state.sqlite'}"
    SyncState(url)  # the tables exist before the processes race
    context = multiprocessing.get_context("spawn")
    out, ready = context.Queue(), context.Barrier(2)
    workers = [context.Process(target=_reserve_in_process, args=(url, 3, ready, out)) for _ in range(2)]
    for worker in workers:
        worker.start()
    slots = sorted(out.get(timeout=60) + out.get(timeout=60))
    for worker in workers:
        worker.join(timeout=60)
    # Two processes, each with its own budget, would both start with a burst of 2: four slots at once.
    assert [slot - slots[0] for slot in slots] == pytest.approx([0, 0, 1, 2, 3, 4], abs=0.5)


def test_operations_and_tenants_have_budgets_of_their_own(tmp_path):
    acme = SyncState(f"sqlite:///{tmp_path / 'acme.sqlite'}").budget_store()
    globex = SyncState(f"sqlite:///{tmp_path / 'globex.sqlite'}").budget_store()
    assert [acme.reserve("createReport", RATE, 1) for _ in range(2)] == pytest.approx([0, 1], abs=0.2)
    # Another operation of the same tenant, and the same operation of another tenant, are untouched.
    assert acme.reserve("getReport", RATE, 1) == 0
    assert globex.reserve("createReport", RATE, 1) == 0


@pytest.mark.parametrize("make_store", [LocalBudgetStore, None], ids=["local", "shared"])
def test_a_429_empties_the_bucket(tmp_path, make_store):
    store = make_store() if make_store else SyncState(f"sqlite:///{tmp_path / 's.sqlite'}").budget_store()
    assert store.reserve("getReports", RATE, 5) == 0  # four tokens left
    store.drain("getReports")
    assert store.reserve("getReports", RATE, 5) == pytest.approx(1, abs=0.2)


def test_the_live_rate_amazon_announced_is_what_the_next_run_starts_from(tmp_path):
    """A run that learnt Amazon's live rate leaves it for the next one, which would else wait by the
    documented (much slower) default until its own first answer."""
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    first = SyncState(url).budget_store()
    assert first.reserve("createReport", 0.0167, 1) == 0
    first.learn_rate("createReport", 1.0)
    later_run = SyncState(url).budget_store()
    assert later_run.reserve("createReport", 0.0167, 1) == pytest.approx(1, abs=0.2)  # not 60 s
