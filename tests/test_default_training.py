"""The README's main job, end to end: the default `idattn train` learns the embedded text."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

IDATTN = str(Path(sys.executable).parent / "idattn")


@pytest.mark.slow
def test_default_run_beats_unigram_by_one_bit(tmp_path):
    result = subprocess.run([IDATTN, "train"], cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-2000:]
    with (tmp_path / "results" / "runs.csv").open(newline="") as file:
        (row,) = list(csv.DictReader(file))
    val_bpb, unigram_bpb = float(row["val_bpb"]), float(row["val_unigram_bpb"])
    assert val_bpb <= 3.0
    assert val_bpb <= unigram_bpb - 1.0
    assert f"{val_bpb:.4f}" in result.stdout
    assert f"{unigram_bpb:.4f}" in result.stdout
