"""Read a results CSV into a DataFrame, with one-line errors for files that are missing or damaged.

Results files only ever gain columns (see store.py), so a file written by an older version lacks some
columns: they are added as empty, and every reader works on the newest schema.
"""

import csv
from pathlib import Path

import pandas as pd

from ..errors import UserError

# table name -> (file name, how to get the file, columns every reader may rely on)
FILES = {
    "runs": ("runs.csv", "run `idattn train` to write it",
             ["run_id", "timestamp", "model", "mixer", "data", "seed", "steps", "n_params", "val_loss", "val_ppl",
              "val_bpb", "recipe", "run_name", "mixer_config"]),
    "ablations": ("ablations.csv", "run `idattn ablate component=<name>` to write it",
                  ["ablation_id", "timestamp", "component", "cell", "run_id", "model", "mixer", "seed", "val_loss",
                   "val_ppl", "delta_loss", "delta_ppl", "config_key"]),
    "extrapolation": ("extrapolation.csv", "run `idattn extrapolate` to write it",
                      ["extrapolation_id", "timestamp", "run_id", "model", "mixer", "data", "seed", "factor",
                       "train_context", "eval_length", "ppl", "bucket_size", "bucket_start", "bucket_ppl"]),
    "eval": ("eval.csv", "run `idattn eval` to write it",
             ["eval_id", "timestamp", "run_id", "task", "metric", "value", "stderr", "reported", "model", "mixer",
              "seed"]),
    "recall": ("recall.csv", "no idattn command writes recall results yet (a recall benchmark would)",
               ["run_id", "model", "mixer", "task", "context_length", "score"]),
}
NUMERIC = {"seed", "steps", "n_params", "val_loss", "val_ppl", "val_bpb", "delta_loss", "delta_ppl", "factor",
           "train_context", "eval_length", "ppl", "bucket_size", "value", "stderr", "context_length", "score"}


def load_results(results_dir: str | Path, table: str) -> pd.DataFrame:
    """Return the rows of `table`'s CSV in results_dir; raise UserError if it is missing, empty or malformed."""
    file_name, writer, columns = FILES[table]
    path = Path(results_dir) / file_name
    if not path.is_file():
        raise UserError(f"results file {path} not found; {writer}, or pass --results-dir for another folder")
    header = _check_rows(path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in columns:
        if column not in header:
            frame[column] = ""
    for column in NUMERIC & set(frame.columns):
        frame[column] = _numbers(frame[column], path, column)
    return frame


def _check_rows(path: Path) -> list[str]:
    """Return the header; raise UserError naming the file and line of the first row with a wrong field count."""
    try:
        with path.open(newline="") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if not header:
                raise UserError(f"results file {path} is empty; delete it, or rerun the command that writes it")
            rows = 0
            for fields in reader:
                if len(fields) != len(header):
                    raise UserError(f"results file {path} line {reader.line_num}: {len(fields)} fields, but the header "
                                    f"has {len(header)}; repair or delete that line")
                rows += 1
    except (UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"results file {path} is not a readable CSV ({error}); repair or delete it") from error
    if rows == 0:
        raise UserError(f"results file {path} has a header but no rows; rerun the command that writes it")
    return header


def _numbers(values: pd.Series, path: Path, column: str) -> pd.Series:
    numbers = pd.to_numeric(values.replace("", None), errors="coerce")
    bad = numbers.isna() & values.ne("")
    if bad.any():
        index = int(bad.idxmax())
        line = index + 2   # the header is line 1; NOTE: assumes no field spans several lines before this row
        raise UserError(f"results file {path} line {line}: {column}={values[index]!r} is not a number; "
                        "repair or delete that line")
    return numbers


def apply_filters(frame: pd.DataFrame, where: list[str]) -> pd.DataFrame:
    """Keep the rows whose column equals the value of each `column=value` filter."""
    for condition in where:
        column, sep, value = condition.partition("=")
        if not sep or not column:
            raise UserError(f"invalid filter {condition!r}; write --where column=value, e.g. --where mixer=interdomain")
        if column not in frame.columns:
            raise UserError(f"unknown column {column!r} in --where; columns: {', '.join(sorted(frame.columns))}")
        frame = frame[frame[column].map(lambda cell: _matches(cell, value))]
    return frame


def _matches(cell, value: str) -> bool:
    """Compare as numbers when both sides are numbers (so factor=2 matches 2.0), else as text."""
    try:
        return float(cell) == float(value)
    except (TypeError, ValueError):
        return _as_text(cell) == value


def _as_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
