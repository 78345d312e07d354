"""Render a summary DataFrame as a rich table, Markdown, LaTeX or CSV text."""

import io

import pandas as pd
from rich.console import Console
from rich.table import Table

FORMATS = ("table", "markdown", "latex", "csv")


def rich_table(frame: pd.DataFrame, title: str) -> Table:
    """Build a rich table; text columns align left, number columns right."""
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        table.add_column(str(column), justify="left" if _is_text(frame[column]) else "right", overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*(str(value) for value in row))
    return table


def _is_text(column: pd.Series) -> bool:
    """Return True when a column contains labels rather than numbers (which start with a digit, sign or ~)."""
    first = next((str(value) for value in column if str(value)), "")
    return not first[:1] in set("0123456789+-~")


def render_text(frame: pd.DataFrame, title: str, fmt: str, width: int = 80) -> str:
    """Return the table as text in `fmt`: a plain-text rich table of `width` columns, Markdown, LaTeX or CSV."""
    if fmt == "table":
        console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
        console.print(rich_table(frame, title))
        return console.export_text()
    if fmt == "markdown":
        align = ["left" if _is_text(frame[column]) else "right" for column in frame.columns]
        # disable_numparse keeps each cell exactly as formatted (tabulate would reformat "5.500" as 5.5)
        body = frame.to_markdown(index=False, disable_numparse=True, colalign=align)
        return f"**{title}**\n\n{body}\n"
    if fmt == "latex":
        escaped = frame.rename(columns=_latex_escape).map(_latex_escape)
        return escaped.to_latex(index=False, caption=_latex_escape(title), escape=False)
    return frame.to_csv(index=False)


def _latex_escape(value) -> str:
    text = str(value)
    for plain, latex in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                         ("±", r"$\pm$"), ("Δ", r"$\Delta$"), ("~", r"$\sim$")):
        text = text.replace(plain, latex)
    return text
