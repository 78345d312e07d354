"""`idattn bench <name>`: run a benchmark from the repository's bench/ folder and record its rows.

Each row gets the command, the machine and the provenance columns of the other results files, and
is appended to results/bench_<name>.csv, so docs/benchmarks.md can cite one run by its rows.
"""

import importlib
import sys
from pathlib import Path

from .. import provenance, runtime
from ..errors import UserError
from ..results.store import append_row

# each benchmark's options and their defaults; an option a benchmark does not list is rejected
BENCHMARKS = {
    "op": {"lengths": "1024,2048,4096,8192,16384", "backends": "chunk,fft,scan", "reps": 3, "heads": 8,
           "slow_max_length": 4096},
    "decode": {"lengths": "512,1024,2048,4096,8192,16384", "models": "tiny,125m", "reps": 20},
    "prefill": {"lengths": "16384", "models": "tiny,125m", "prefill_chunk_size": 2048},
    "train": {"models": "tiny,small", "reps": 10},
}
DTYPES = ("float32", "bfloat16", "float16")
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


def _check_device(device: str, dtype: str) -> None:
    import torch

    if device not in ("cpu", "cuda"):
        raise UserError(f"invalid --device {device!r}; choose from cpu, cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda, but torch sees no CUDA device here; run on a GPU machine or use --device cpu")
    if dtype not in DTYPES:
        raise UserError(f"invalid --dtype {dtype!r}; choose from {', '.join(DTYPES)}")


def _options(name: str, options_given: dict) -> dict:
    """Return benchmark `name`'s options: its defaults, updated by the given values that are not None."""
    defaults = BENCHMARKS[name]
    for option, value in options_given.items():
        if value is None:
            continue
        flag = "--" + option.replace("_", "-")
        if option not in defaults:
            valid = ["--" + key.replace("_", "-") for key in defaults] + ["--device", "--results-dir"]
            raise UserError(f"{flag} does not apply to bench {name}; its options are {', '.join(valid[:-1])}, "
                            f"--dtype and {valid[-1]}")
        if isinstance(value, int) and value < 1:
            raise UserError(f"invalid {flag} {value}; give a positive integer")
    return {**defaults, **{key: value for key, value in options_given.items() if value is not None}}


def run_bench(name: str, *, results_dir: Path = Path("results"), device: str = "cpu", dtype: str = "float32",
              **options_given) -> tuple[list[dict], list]:
    """Run benchmark `name`; return its rows (also appended to results_dir/bench_<name>.csv) and its columns.

    `options_given` are the benchmark's own options as typed (lengths, backends, models, reps, heads,
    slow_max_length, prefill_chunk_size). A value of None selects the benchmark's default.
    """
    from ..config import group_options
    from ..ops import BACKENDS

    if name not in BENCHMARKS:
        raise UserError(f"invalid benchmark {name!r}; valid benchmarks: {', '.join(BENCHMARKS)}")
    if not (BENCH_DIR / f"{name}.py").is_file():
        raise UserError(f"benchmark folder {BENCH_DIR} not found; run idattn from an editable install "
                        "of the repository (`pip install -e .`)")
    options = _options(name, options_given)
    _check_device(device, dtype)
    if "lengths" in options:
        options["lengths"] = _numbers(options["lengths"], "--lengths")
    if "models" in options:
        options["models"] = _names(options["models"], "--models", group_options("model"))
    if "backends" in options:
        options["backends"] = _names(options["backends"], "--backends", BACKENDS)

    import torch

    sys.path.insert(0, str(BENCH_DIR.parent))
    module = importlib.import_module(f"bench.{name}")
    rows = module.run(**options, device=device, dtype=dtype)
    context = {
        "bench_id": provenance.new_run_id(),
        "timestamp": provenance.utc_timestamp(),
        "command": " ".join(["idattn", *sys.argv[1:]]),
        "device_name": provenance.device_name(torch.device(device)),
        "dtype": dtype,
        "torch_threads": torch.get_num_threads(),
        "cpu_allocator": runtime.setting,
        "git_revision": provenance.git_revision(),
        **provenance.versions(),
    }
    rows = [{**context, **row} for row in rows]
    for row in rows:
        append_row(Path(results_dir) / f"bench_{name}.csv", row)
    return rows, module.COLUMNS
