"""Slow checks: every ablation-cube cell trains from the CLI, and the layer is sound under bf16 autocast."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from idattn_cli.config import group_options
from idattn_cli.layers import InterdomainAttention

IDATTN = str(Path(sys.executable).parent / "idattn")
CUBE_CELLS = [name for name in group_options("recipe") if name.startswith("cube_")]


def test_cube_has_eight_corners_and_softmax():
    assert len(CUBE_CELLS) == 9
    assert "cube_softmax" in CUBE_CELLS


@pytest.mark.slow
@pytest.mark.parametrize("cell", CUBE_CELLS)
def test_cube_cell_trains_20_steps(cell, tmp_path):
    result = subprocess.run([IDATTN, "train", f"recipe={cell}", "trainer.max_steps=20", "optim.warmup_steps=5",
                             "model.n_layers=2"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    with (tmp_path / "results" / "runs.csv").open(newline="") as file:
        (row,) = list(csv.DictReader(file))
    assert row["recipe"] == cell
    assert row["steps"] == "20"
    assert float(row["val_loss"]) < 5.5   # below the 8-bit uniform guess, so it learned something


def relative_error(actual, expected):
    return ((actual.float() - expected).norm() / expected.norm()).item()


@pytest.mark.slow
def test_bf16_autocast_4096_tokens_matches_float32():
    torch.manual_seed(0)
    layer = InterdomainAttention(256, 4, state_dim=64)
    x = torch.randn(1, 4096, 256)

    x32 = x.clone().requires_grad_()
    y32, _ = layer(x32)
    y32.pow(2).mean().backward()
    grads32 = {name: p.grad.clone() for name, p in layer.named_parameters()}
    layer.zero_grad()

    x16 = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16, _ = layer(x16)
        y16.float().pow(2).mean().backward()

    assert torch.isfinite(y16).all()
    assert torch.isfinite(x16.grad).all()
    assert relative_error(y16, y32) <= 2e-2
    assert relative_error(x16.grad, x32.grad) <= 2e-2
    for name, p in layer.named_parameters():
        assert torch.isfinite(p.grad).all(), name
        assert relative_error(p.grad, grads32[name]) <= 2e-2, name
