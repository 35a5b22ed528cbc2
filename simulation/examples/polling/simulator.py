"""Run the polling scenario with its own configs: ``python simulation/examples/polling/simulator.py``."""

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # run from a checkout without installing
    from simulation.cli import run_scenario_main

    run_scenario_main(Path(__file__).parent)
