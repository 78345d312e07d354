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

# each benchmark's defaults: lengths, model presets, timed repetitions
BENCHMARKS = {
    "op": {"lengths": "1024,2048,4096,8192,16384", "reps": 3},
    "decode": {"lengths": "512,1024,2048,4096,8192,16384", "models": "tiny,125m", "reps": 20},
    "prefill": {"lengths": "16384", "models": "tiny,125m"},
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


def run_bench(name: str, *, lengths: str | None = None, backends: str = "chunk,fft,scan", models: str | None = None,
              reps: int | None = None, results_dir: Path = Path("results"), slow_max_length: int = 4096,
              heads: int = 8, prefill_chunk_size: int = 2048, device: str = "cpu",
              dtype: str = "float32") -> tuple[list[dict], list]:
    """Run benchmark `name`; return its rows (also appended to results_dir/bench_<name>.csv) and its columns."""
    from ..config import group_options
    from ..ops import BACKENDS

    if name not in BENCHMARKS:
        raise UserError(f"invalid benchmark {name!r}; valid benchmarks: {', '.join(BENCHMARKS)}")
    if not (BENCH_DIR / f"{name}.py").is_file():
        raise UserError(f"benchmark folder {BENCH_DIR} not found; run idattn from an editable install "
                        "of the repository (`pip install -e .`)")
    defaults = BENCHMARKS[name]
    if lengths is not None and "lengths" not in defaults:
        raise UserError(f"--lengths does not apply to bench {name}, whose context is each preset's "
                        "model.context_length; leave it out")
    if reps is not None and reps < 1:
        raise UserError(f"invalid --reps {reps}; give a positive integer")
    for option, value in (("--heads", heads), ("--prefill-chunk-size", prefill_chunk_size)):
        if value < 1:
            raise UserError(f"invalid {option} {value}; give a positive integer")
    _check_device(device, dtype)
    points = _numbers(lengths or defaults["lengths"], "--lengths") if "lengths" in defaults else None
    presets = _names(models or defaults["models"], "--models", group_options("model")) if "models" in defaults else None
    reps = reps or defaults.get("reps")

    import torch

    sys.path.insert(0, str(BENCH_DIR.parent))
    module = importlib.import_module(f"bench.{name}")
    on = {"device": device, "dtype": dtype}
    if name == "op":
        rows = module.run(points, _names(backends, "--backends", BACKENDS), reps=reps,
                          slow_max_length=slow_max_length, heads=heads, **on)
    elif name == "decode":
        rows = module.run(points, presets, reps=reps, **on)
    elif name == "prefill":
        rows = module.run(points, presets, prefill_chunk_size=prefill_chunk_size, **on)
    else:
        rows = module.run(presets, reps=reps, **on)
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
