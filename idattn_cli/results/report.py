"""`idattn results`: load one results CSV, filter it, and lay it out as a table (and figures)."""

from pathlib import Path

import pandas as pd

from ..errors import UserError
from . import tables
from .load import FILES, apply_filters, load_results

TITLES = {
    "runs": "{metric} by scale and mixer",
    "ablations": "ablations: change against the full layer",
    "extrapolation": "perplexity by context factor (mean over corpora)",
    "eval": "downstream metrics by task and mixer",
    "recall": "recall",
}
PAPER_TITLES = {
    "runs": "validation perplexity: yours beside the paper's (FineWeb-Edu, ~20 tokens per parameter)",
    "ablations": "ablation cube, paper table 4 (125M, 2.5B tokens) beside your cells",
    "extrapolation": "length extrapolation: yours beside the paper's (1.3B trained at 4,096 tokens)",
    "eval": "zero-shot downstream: yours beside the paper's (1.3B)",
}


def summary(table: str, results_dir: str | Path, where: list[str], paper: bool = False,
            metric: str = "val_ppl") -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """Return (title, display table, filtered rows) for one results table."""
    if table not in FILES:
        raise UserError(f"invalid table {table!r}; valid tables: {', '.join(FILES)}")
    rows = apply_filters(load_results(results_dir, table), where)
    if rows.empty:
        raise UserError(f"no rows of {FILES[table][0]} match --where {' '.join(where)}; loosen the filters")
    if paper:
        if table not in PAPER_TITLES:
            raise UserError(f"the paper reports no {table} numbers that idattn ships; use --paper with runs, "
                            "ablations, extrapolation or eval")
        return PAPER_TITLES[table], tables.paper_beside(table, rows), rows
    if table == "recall":
        return TITLES[table], rows[FILES["recall"][2]], rows
    if table == "runs":
        if metric not in ("val_ppl", "val_loss", "val_bpb"):
            raise UserError(f"invalid metric {metric!r}; valid metrics: val_ppl, val_loss, val_bpb")
        return TITLES[table].format(metric=metric), tables.runs_table(rows, metric), rows
    builders = {"ablations": tables.ablations_table, "extrapolation": tables.extrapolation_table,
                "eval": tables.eval_table}
    return TITLES[table] + _single_values(rows), builders[table](rows), rows


def _single_values(rows: pd.DataFrame) -> str:
    """Name the component and model in the title when all rows share them (the table then omits them)."""
    shared = [f"{column} {rows[column].iloc[0]}" for column in ("component", "model")
              if column in rows and rows[column].nunique() == 1]
    return f" ({', '.join(shared)})" if shared else ""


def write_plots(table: str, rows: pd.DataFrame, folder: Path) -> list[Path]:
    """Save the figures of `table` as PNG and SVG in `folder`; return their paths."""
    from .plots import PLOTS   # matplotlib is imported only when figures are requested

    if table not in PLOTS:
        raise UserError(f"no figure is defined for {table}; --plot works with {', '.join(PLOTS)}")
    written = []
    for name, plot in PLOTS[table]:
        written += plot(rows, folder / name)
    return written
