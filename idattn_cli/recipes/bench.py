"""`idattn bench <name>`: run a benchmark from the repository's bench/ folder and record its rows.

Each row gets the command, the machine and the provenance columns of the other results files, and
is appended to results/bench_<name>.csv, so docs/benchmarks.md can cite one run by its rows.
"""

import importlib
import sys
from pathlib import Path

from .. import provenance
from ..errors import UserError
from ..results.store import append_row

BENCHMARKS = {"op": "1024,2048,4096,8192,16384", "decode": "512,1024,2048,4096,8192,16384"}   # default lengths
BENCH_DIR = Path(__file__).resolve().parent.parent.parent / "bench"   # beside conf/ in the repository


def _numbers(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise UserError(f"invalid {option} {text!r}; give comma-separated positive integers, e.g. {option} 1024,4096")
    return values


def _names(text: str, option: str, valid) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [part for part in chosen if part not in valid]
    if unknown or not chosen:
        raise UserError(f"invalid {option} {text!r}; choose from {', '.join(valid)}")
    return chosen


def run_bench(name: str, lengths: str | None, backends: str, models: str, reps: int | None, results_dir: Path,
              slow_max_length: int = 4096) -> tuple[list[dict], list]:
    """Run benchmark `name`; return its rows (also appended to results_dir/bench_<name>.csv) and its columns."""
    from ..config import group_options
    from ..ops import BACKENDS

    if name not in BENCHMARKS:
        raise UserError(f"invalid benchmark {name!r}; valid benchmarks: {', '.join(BENCHMARKS)}")
    if not (BENCH_DIR / f"{name}.py").is_file():
        raise UserError(f"benchmark folder {BENCH_DIR} not found; run idattn from an editable install "
                        "of the repository (`pip install -e .`)")
    if reps is not None and reps < 1:
        raise UserError(f"invalid --reps {reps}; give a positive integer")
    points = _numbers(lengths or BENCHMARKS[name], "--lengths")

    import torch

    sys.path.insert(0, str(BENCH_DIR.parent))
    module = importlib.import_module(f"bench.{name}")
    if name == "op":
        rows = module.run(points, _names(backends, "--backends", BACKENDS), reps=reps or 3,
                          slow_max_length=slow_max_length)
    else:
        rows = module.run(points, _names(models, "--models", group_options("model")), reps=reps or 20)
    context = {
        "bench_id": provenance.new_run_id(),
        "timestamp": provenance.utc_timestamp(),
        "command": " ".join(["idattn", *sys.argv[1:]]),
        "device_name": provenance.device_name(torch.device("cpu")),
        "torch_threads": torch.get_num_threads(),
        "git_revision": provenance.git_revision(),
        **provenance.versions(),
    }
    rows = [{**context, **row} for row in rows]
    for row in rows:
        append_row(Path(results_dir) / f"bench_{name}.csv", row)
    return rows, module.COLUMNS
