"""One run's results at a glance, for any scenario: its per-round metrics (the scenario's key metrics
first) beside what each round cost, as a table, CSV, JSON or a PNG with one panel per metric."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pandas as pd

from .query import RunQuery

# the framework's own per-round figures: shown after the scenario's
FRAMEWORK_PREFIXES = ("actions", "failed_steps", "check.", "decision.")
TABLE_COLUMNS = 8  # metrics a console table shows at most (all of them go to CSV and JSON)


def _framework(name: str) -> bool:
    return any(name == p or (p.endswith(".") and name.startswith(p)) for p in FRAMEWORK_PREFIXES)


def order_metrics(names: list[str], key_metrics: list[str] = ()) -> list[str]:
    """The scenario's key metrics (names or globs, in their order), then its other metrics, then the
    framework's (actions, failed steps, checks, decision health)."""
    out: list[str] = []
    for pattern in key_metrics:
        out += [n for n in sorted(names) if fnmatch.fnmatch(n, pattern) and n not in out]
    out += [n for n in sorted(names) if n not in out and not _framework(n)]
    out += [n for n in sorted(names) if n not in out]
    return out


def run_metrics(run_dir: str | Path, patterns: list[str] | None = None, key_metrics: list[str] | None = None,
                costs: bool = True) -> pd.DataFrame:
    """Per-round metrics of a run (rows: rounds), the scenario's key metrics first (as the run recorded
    them, unless given); with ``costs``, each round's cost as ``cost.*`` columns. ``patterns`` (globs)
    keep only the metrics they match."""
    with RunQuery(run_dir) as rq:
        wide = rq.metrics()
        cost = rq.costs() if costs else None
        if key_metrics is None:
            key_metrics = list(rq.meta().get("key_metrics") or [])
    names = [n for n in wide.columns if not patterns or any(fnmatch.fnmatch(n, p) for p in patterns)]
    out = wide[order_metrics(names, key_metrics)]
    if cost is not None and len(cost) and not patterns:
        out = out.join(cost.add_prefix("cost."), how="left")
    out.columns.name = None
    return out


def format_table(df: pd.DataFrame, max_columns: int = TABLE_COLUMNS) -> str:
    """A console table: rounds down, metrics across (the first ``max_columns``; the rest named)."""
    if df.empty:
        return "(no per-round metrics recorded)"
    shown = list(df.columns[:max_columns])
    body = df[shown].map(lambda v: "" if pd.isna(v) else f"{v:.4g}" if isinstance(v, float) else str(v))
    text = body.to_string()
    rest = len(df.columns) - len(shown)
    return text + (f"\n({rest} more: gensim metrics RUN_DIR --format csv)" if rest > 0 else "")


def write_metrics(df: pd.DataFrame, fmt: str) -> str:
    """``df`` as ``table``, ``csv`` or ``json`` (a list of per-round objects)."""
    if fmt == "csv":
        return df.to_csv()
    if fmt == "json":
        rows = [{"round": int(r), **{k: (None if pd.isna(v) else v) for k, v in row.items()}}
                for r, row in df.iterrows()]
        return json.dumps(rows, indent=1)
    return format_table(df, max_columns=len(df.columns))


def plot_run(df: pd.DataFrame, out: str | Path, title: str = "") -> Path:
    """One panel per metric, rounds on x (matplotlib; for files, not the web page)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if df.empty or not len(df.columns):
        raise ValueError("no metric to plot (check --metric)")
    n = len(df.columns)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, df.columns, strict=False):
        ax.plot(df.index, df[name], marker="o", linewidth=1.5)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("round", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
