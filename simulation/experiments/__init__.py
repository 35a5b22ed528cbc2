"""Experiments: replications over seeds and full factorial parameter sweeps, with confidence intervals,
differences from a baseline cell, tidy Parquet results and plots (``gensim experiment``)."""

from __future__ import annotations

import math

import pandas as pd

from .aggregate import summarise, t_interval, welch
from .design import ExperimentDesign, cell_name, parse_baseline, parse_grid
from .run import run_experiment

__all__ = ["ExperimentDesign", "cell_name", "last_round_table", "parse_baseline", "parse_grid", "run_experiment",
           "summarise", "t_interval", "welch"]


def last_round_table(summary: pd.DataFrame, metrics: list[str]) -> str:
    """A compact console table: one row per cell, ``mean ± half-interval`` of each metric on its last round."""
    if summary.empty:
        return "(no finished run)"
    rows = {}
    for metric in metrics:
        part = summary[summary["metric"] == metric]
        if part.empty:
            continue
        last = part[part["round"] == part["round"].max()]
        for r in last.itertuples():
            half = (r.ci_hi - r.ci_lo) / 2 if not math.isnan(r.ci_hi) else None
            rows.setdefault(r.cell, {"n": int(r.n)})[metric] = f"{r.mean:.3g}" + (f" ± {half:.2g}" if half is not None
                                                                                   else "")
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("cell").to_string()
