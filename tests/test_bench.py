"""`idattn bench` at small sizes: rows, ratios and rates are recorded; bad options get one line."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from idattn_cli.cli import app


def test_bench_op_writes_rows(tmp_path):
    result = CliRunner().invoke(app, ["bench", "op", "--lengths", "128,256", "--reps", "1", "--backends",
                                      "chunk,scan", "--slow-max-length", "128", "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "bench_op.csv").open()))
    assert [(row["backend"], row["length"]) for row in rows] == [
        ("sdpa", "128"), ("chunk", "128"), ("scan", "128"), ("sdpa", "256"), ("chunk", "256")]
    for row in rows:
        assert float(row["forward_backward_ms"]) > 0
        assert float(row["forward_backward_gflops"]) > 0
        assert float(row["matmul_gflops"]) > 0
        assert row["git_revision"]
    assert [float(row["ratio_to_sdpa"]) for row in rows if row["backend"] == "sdpa"] == [1.0, 1.0]


def test_bench_bad_options_rejected(tmp_path):
    cases = [
        (["bench", "nope"], "invalid benchmark 'nope'; valid benchmarks: op, decode"),
        (["bench", "op", "--lengths", "1k"], "invalid --lengths '1k'; give comma-separated positive integers"),
        (["bench", "op", "--backends", "cuda"], "invalid --backends 'cuda'; choose from chunk, fft, scan"),
        (["bench", "decode", "--models", "7b"], "invalid --models '7b'; choose from"),
        (["bench", "train", "--lengths", "512"], "--lengths does not apply to bench train; its options are --models, --reps"),
        (["bench", "op", "--heads", "0"], "invalid --heads 0; give a positive integer"),
        (["bench", "decode", "--backends", "chunk"], "--backends does not apply to bench decode"),
        (["bench", "op", "--models", "tiny"], "--models does not apply to bench op"),
        (["bench", "prefill", "--reps", "5"], "--reps does not apply to bench prefill"),
        (["bench", "op", "--dtype", "fp8"], "invalid --dtype 'fp8'; choose from float32, bfloat16, float16"),
        (["bench", "op", "--device", "tpu"], "invalid --device 'tpu'; choose from cpu, cuda"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(app, [*args, "--results-dir", str(tmp_path)])
        assert result.exit_code == 2, args
        assert message in " ".join(result.stderr.split()), args


def test_bench_decode_writes_rows(tmp_path):
    result = CliRunner().invoke(app, ["bench", "decode", "--lengths", "16,64", "--models", "tiny", "--reps", "2",
                                      "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "bench_decode.csv").open()))
    assert [(row["mixer"], row["length"]) for row in rows] == [
        ("interdomain", "16"), ("interdomain", "64"), ("s4d", "16"), ("s4d", "64"), ("softmax", "16"), ("softmax", "64")]
    memory = {(row["mixer"], row["length"]): float(row["state_mib"]) for row in rows}
    assert memory["interdomain", "16"] == memory["interdomain", "64"], "a fixed-size state"
    assert memory["softmax", "64"] == 4 * memory["softmax", "16"], "a KV cache grows with the context"
    assert all(float(row["step_ms"]) > 0 for row in rows)


def test_bench_prefill_whole_and_chunked(tmp_path):
    result = CliRunner().invoke(app, ["bench", "prefill", "--lengths", "256", "--models", "tiny",
                                      "--prefill-chunk-size", "64", "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "bench_prefill.csv").open()))
    assert [(row["mixer"], row["mode"]) for row in rows] == [
        (mixer, mode) for mixer in ("interdomain", "s4d", "softmax") for mode in ("whole", "chunked")]
    assert all(float(row["peak_mib"]) > 0 and float(row["seconds"]) > 0 for row in rows), rows
    state = {(row["mixer"], row["mode"]): float(row["state_mib"]) for row in rows}
    assert state["interdomain", "whole"] == state["interdomain", "chunked"]
    assert state["softmax", "whole"] == state["softmax", "chunked"] == 1.0, "4 layers x 2 x 128 x 256 x 4 bytes"


def test_bench_train_tokens_per_second(tmp_path):
    result = CliRunner().invoke(app, ["bench", "train", "--models", "tiny", "--reps", "1", "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "bench_train.csv").open()))
    assert [row["mixer"] for row in rows] == ["interdomain", "s4d", "softmax"]
    for row in rows:
        assert (row["batch_size"], row["length"]) == ("16", "256")
        assert float(row["tokens_per_sec"]) == pytest.approx(16 * 256 / (float(row["step_ms"]) / 1e3))
        assert row["cpu_allocator"] and row["dtype"] == "float32"


def test_gpu_script_dry_run_on_cpu(tmp_path):
    """bench/gpu.sh runs both benchmarks; on CPU with tiny shapes it checks the script, not the GPU."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "DEVICE": "cpu", "DTYPE": "float32", "MODEL": "tiny", "HEADS": "2", "OP_LENGTHS": "128",
           "DECODE_LENGTHS": "32", "RESULTS": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(root / "bench" / "gpu.sh")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    op = list(csv.DictReader((tmp_path / "bench_op.csv").open()))
    decode = list(csv.DictReader((tmp_path / "bench_decode.csv").open()))
    assert [(row["backend"], row["heads"]) for row in op] == [("sdpa", "2"), ("chunk", "2")]
    assert [row["mixer"] for row in decode] == ["interdomain", "s4d", "softmax"]
