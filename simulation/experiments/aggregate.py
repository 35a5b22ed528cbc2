"""An experiment's numbers: tidy rows of every run's per-round metrics, their mean, standard deviation
and 95% t-interval per cell, round and metric, each cell's difference from the baseline cell on the
last round with its Welch interval, and one plot per metric."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

LEVEL = 0.95


def t_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float, float, float]:
    """Mean, sample standard deviation and the ``level`` t-interval of the mean (NaN bounds for n < 2)."""
    from scipy import stats

    n = len(values)
    mean = float(np.mean(values)) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(np.std(values, ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


def welch(a: np.ndarray, b: np.ndarray, level: float = LEVEL) -> tuple[float, float, float]:
    """``mean(a) - mean(b)`` with its Welch ``level`` interval (NaN bounds below two values a side)."""
    from scipy import stats

    diff = float(np.mean(a) - np.mean(b))
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan, math.nan
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    return diff, diff - half, diff + half


def summarise(results: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """Per cell, round and metric: mean, sd, n, 95% t-interval; with ``baseline`` (a cell name), on each
    metric's last round, the difference from the baseline cell with its Welch interval."""
    rows = []
    for (cell, r, metric), g in results.groupby(["cell", "round", "metric"], sort=True):
        mean, sd, lo, hi = t_interval(g["value"].to_numpy(dtype=float))
        rows.append({"cell": cell, "round": int(r), "metric": metric, "mean": mean, "sd": sd, "n": len(g),
                     "ci_lo": lo, "ci_hi": hi})
    out = pd.DataFrame(rows, columns=["cell", "round", "metric", "mean", "sd", "n", "ci_lo", "ci_hi"])
    if baseline is not None and len(out):
        out["diff"] = out["diff_lo"] = out["diff_hi"] = math.nan
        last = results.groupby("metric")["round"].max()
        for metric, r in last.items():
            base = results[(results["cell"] == baseline) & (results["round"] == r) & (results["metric"] == metric)]
            if base.empty:
                continue
            for cell, g in results[(results["round"] == r) & (results["metric"] == metric)].groupby("cell"):
                d, lo, hi = welch(g["value"].to_numpy(dtype=float), base["value"].to_numpy(dtype=float))
                hit = (out["cell"] == cell) & (out["round"] == r) & (out["metric"] == metric)
                out.loc[hit, ["diff", "diff_lo", "diff_hi"]] = [d, lo, hi]
    return out


def plot_metric(summary: pd.DataFrame, metric: str, path: Path) -> Path:
    """A line per cell over rounds with its 95% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for cell, g in summary[summary["metric"] == metric].groupby("cell", sort=True):
        g = g.sort_values("round")
        ax.plot(g["round"], g["mean"], marker="o", linewidth=1.5, label=f"{cell} (n={int(g['n'].max())})")
        if g["ci_lo"].notna().any():
            ax.fill_between(g["round"], g["ci_lo"], g["ci_hi"], alpha=0.2)
    ax.set_title(f"{metric} (mean, 95% t-interval)", fontsize=10)
    ax.set_xlabel("round")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_file(metric: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in metric) + ".png"
