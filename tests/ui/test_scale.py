"""A 100,000-agent run folder (polling, one round, on the in-process fake model): the page's agents table,
agent map and calls table load through the served API, paged and capped, with the right sizes. The load
times and the server's memory are printed (``-s``) for the notes; they are not asserted (no timed tests)."""

from __future__ import annotations

import asyncio
import resource
import time

import pytest

from simulation.runner import RunOptions, run_simulation
from simulation.store.query import RunQuery
from simulation.ui.app import MAP_POINTS, PAGE
from tests.ui.serving import serving

AGENTS = 100_000


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("scale") / "runs"
    out = runs / "big"
    asyncio.run(run_simulation(RunOptions(scenario="polling", agents=AGENTS, rounds=1, out=str(out), progress=False,
                                          overrides=["llm.backend=fake"])))
    return runs


def test_agents_map_and_calls_load_at_100k(big_run):
    from gradio_client import Client

    with RunQuery(big_run / "big") as rq:
        assert rq.count("agents") == AGENTS
        n_calls = rq.count("llm_calls")
        assert n_calls >= AGENTS
    times = {}
    with serving(big_run) as (url, _):
        c = Client(url, verbose=False)
        t0 = time.perf_counter()
        info, table, _ = c.predict("big", "", "any", 3, api_name="/agents_page")
        times["agents table (page 3)"] = time.perf_counter() - t0
        assert info.startswith(f"{AGENTS:,} agents · page 3 of {-(-AGENTS // PAGE):,}")
        assert len(table["data"]) == PAGE
        t0 = time.perf_counter()
        info, table, _ = c.predict("big", "voter-0", "any", 1, api_name="/agents_page")
        times["agents search"] = time.perf_counter() - t0
        assert all("voter-0" in row[0] for row in table["data"])
        t0 = time.perf_counter()
        m = c.predict("big", api_name="/draw_map")
        times["agent map"] = time.perf_counter() - t0
        assert len(m["data"]) == MAP_POINTS and {"x", "y", "type"} <= set(m["columns"])
        t0 = time.perf_counter()
        info, table = c.predict("big", "", "", "", "", "", "", 40, api_name="/calls")
        times["calls table (page 40)"] = time.perf_counter() - t0
        assert info.startswith(f"{n_calls:,} calls · page 40") and len(table["data"]) == PAGE
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("\n100k-agent run folder: " + ", ".join(f"{k} {v:.2f}s" for k, v in times.items())
          + f"; test process (UI server inside) peak RSS {rss:.0f} MiB")
