"""`idattn bench op` at small sizes: rows, ratios and rates are recorded; bad options get one line."""

import csv

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
