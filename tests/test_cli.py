"""The `idattn` console script, run in a subprocess as a user would."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from idattn_cli.training.checkpoint import load_model

IDATTN = str(Path(sys.executable).parent / "idattn")


def idattn(*args, cwd):
    return subprocess.run([IDATTN, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_help_lists_train(tmp_path):
    result = idattn("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "train" in result.stdout


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("run")
    return cwd, idattn("train", "trainer.max_steps=20", "model.n_layers=2", cwd=cwd)


def test_short_training_run_appends_row(short_run):
    cwd, result = short_run
    assert result.returncode == 0, result.stderr
    with (cwd / "results" / "runs.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 1
    row = rows[0]
    assert row["steps"] == "20"
    assert row["mixer"] == "interdomain"
    assert '"n_layers": 2' in row["config"]
    for column in ("run_id", "timestamp", "seed", "git_revision", "torch_version", "lightning_version",
                   "val_loss", "val_ppl", "val_bpb", "val_unigram_bpb", "tokens_per_sec", "n_params",
                   "state_size_per_layer", "train_loss"):
        assert row[column], column
    assert float(row["val_bpb"]) < 8.0
    assert int(row["state_size_per_layer"]) == 4 * 2 * 16 * (32 + 32)
    assert Path(cwd, row["checkpoint"]).is_file()
    assert row["command"] == "train"
    assert row["recipe"] == ""
    assert row["precision"] == "32-true"
    assert row["accelerator"] == "cpu"


def test_checkpoint_reloads_for_decoding(short_run):
    cwd, _ = short_run
    with (cwd / "results" / "runs.csv").open(newline="") as file:
        (row,) = list(csv.DictReader(file))
    model, config = load_model(Path(cwd, row["checkpoint"]))
    assert config["model"]["n_layers"] == 2
    tokens = torch.tensor([list(b"To be, or not to be")])
    logits, _ = model(tokens)
    states, last = None, None
    for t in range(tokens.shape[1]):
        last, states = model.step(tokens[:, t], states)
    assert torch.allclose(last, logits[:, -1], atol=1e-4)


def test_short_training_run_prints_summary(short_run):
    _, result = short_run
    assert "validation bits per byte" in result.stdout
    assert "validation unigram entropy" in result.stdout
    assert "step 20/20" in result.stderr   # metric lines are logged even without a terminal
    assert "checkpoint: outputs/" in result.stdout
    assert "warmup_steps=100 >= trainer.max_steps=20" in result.stderr


@pytest.mark.parametrize("override,expected", [
    ("mixer=nope", "invalid choice 'nope' for mixer; valid choices: interdomain"),
    ("model.foo=1", "unknown config key 'model.foo'"),
])
def test_bad_override_exits_2_with_one_line(tmp_path, override, expected):
    result = idattn("train", override, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()


def test_debug_flag_shows_traceback(tmp_path):
    result = idattn("train", "mixer=nope", "--debug", cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_info_prints_size_without_training(tmp_path):
    result = idattn("info", "model=1.3b", "mixer=interdomain", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1,352,600,320" in result.stdout
    assert "524,288" in result.stdout
    assert "decode FLOPs per token" in result.stdout
    assert not (tmp_path / "results").exists()
