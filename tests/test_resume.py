"""Surviving faults: batch order by position, atomic checkpoints, resume after SIGKILL and SIGTERM,
and non-finite losses.

The kill tests (marked slow: about 50 s) run `idattn train` in a subprocess, as a user or a scheduler
would, and compare the resumed run's results row with an uninterrupted run of the same seed.
"""

import csv
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from idattn_cli.cli import app
from idattn_cli.data.samplers import GlobalBatchSampler, ShardSampler
from idattn_cli.errors import UserError
from idattn_cli.training.checkpointing import AtomicCheckpointIO

IDATTN = str(Path(sys.executable).parent / "idattn")

# 200 steps of 4 x 64 tokens: long enough to kill mid-way, a few seconds uninterrupted
RUN = ["model.n_layers=1", "model.context_length=64", "data.batch_size=4", "trainer.max_steps=200",
       "trainer.val_every_n_steps=100", "trainer.limit_val_batches=2", "trainer.final_limit_val_batches=8",
       "optim.warmup_steps=5", "trainer.checkpoint_every_n_steps=10", "trainer.log_every_n_steps=50"]


def paths(folder: Path) -> list[str]:
    return [f"paths.results_dir={folder / 'results'}", f"paths.output_dir={folder / 'outputs'}"]


def runs(folder: Path) -> list[dict]:
    path = folder / "results" / "runs.csv"
    return list(csv.DictReader(path.open())) if path.exists() else []


# --- batch order ------------------------------------------------------------------------------------

def take(sampler, count):
    iterator = iter(sampler)
    return [next(iterator) for _ in range(count)]


@pytest.mark.parametrize("start", [0, 1, 6, 7, 13])
def test_sampler_start_continues_order(start):
    # 30 blocks, batch 4: 7 batches per pass, so starts 6, 7 and 13 sit at and across pass boundaries
    full = take(GlobalBatchSampler(30, 4, seed=3), 20)
    assert take(GlobalBatchSampler(30, 4, seed=3, start=start), 20 - start) == full[start:]


def test_sampler_passes_are_seeded_permutations():
    batches = take(GlobalBatchSampler(30, 4, seed=3), 14)
    first, second = sum(batches[:7], []), sum(batches[7:], [])
    assert len(set(first)) == 28
    assert len(set(second)) == 28
    assert first != second
    assert take(GlobalBatchSampler(30, 4, seed=4), 7) != batches[:7]


def test_sampler_ranks_split_each_global_batch():
    single = take(GlobalBatchSampler(30, 4, seed=3), 10)
    ranks = [take(GlobalBatchSampler(30, 4, seed=3, rank=r, world_size=2, start=0), 10) for r in range(2)]
    assert [a + b for a, b in zip(*ranks)] == single


def test_sampler_rejects_bad_sizes():
    with pytest.raises(UserError, match="data.batch_size=6 does not split evenly over 4 processes"):
        GlobalBatchSampler(30, 6, seed=0, world_size=4)
    with pytest.raises(UserError, match="the training split has 3 blocks, fewer than data.batch_size=4"):
        GlobalBatchSampler(3, 4, seed=0)


@pytest.mark.parametrize("n", [7, 8, 1])
def test_shard_sampler_covers_every_item_once(n):
    shards = [list(ShardSampler(n, rank, 3)) for rank in range(3)]
    assert sorted(sum(shards, [])) == list(range(n))
    assert [len(ShardSampler(n, rank, 3)) for rank in range(3)] == [len(s) for s in shards]


# --- atomic checkpoint writes -----------------------------------------------------------------------

def test_killed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "resume.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, path)

    def dies_half_way(obj, file):
        file.write(b"partial")
        raise KeyboardInterrupt   # as a kill would interrupt it

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path)["step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["resume.ckpt"], "the temporary file is removed"
    io.save_checkpoint({"step": 3}, path)
    assert torch.load(path)["step"] == 3


# --- resume after kills -----------------------------------------------------------------------------

def start_until_checkpoint(folder: Path, min_step: int = 10) -> subprocess.Popen:
    """Start a run and return it once its first resume checkpoint exists."""
    process = subprocess.Popen([IDATTN, "train", *RUN, *paths(folder)], cwd=folder,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(folder.glob("outputs/*/checkpoints/resume.ckpt")):
        assert process.poll() is None, f"the run ended before its first checkpoint: {process.stderr.read()}"
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.01)
    return process


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    result = subprocess.run([IDATTN, "train", *RUN, *paths(folder)], cwd=folder, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return runs(folder)[0]


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted(tmp_path, uninterrupted):
    process = start_until_checkpoint(tmp_path)
    process.kill()   # SIGKILL: no handler runs, nothing is flushed
    process.wait()
    assert runs(tmp_path) == []
    checkpoint = torch.load(next(tmp_path.glob("outputs/*/checkpoints/resume.ckpt")), weights_only=False)
    killed_at = checkpoint["global_step"]
    assert 0 < killed_at < 200

    result = subprocess.run([IDATTN, "train", *RUN, *paths(tmp_path), "resume=last"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    [row] = runs(tmp_path)
    assert row["steps"] == uninterrupted["steps"] == "200"
    assert int(row["resumed_from_step"]) >= killed_at
    assert abs(float(row["val_loss"]) - float(uninterrupted["val_loss"])) <= 1e-6
    assert abs(float(row["train_loss"]) - float(uninterrupted["train_loss"])) <= 1e-6
    assert len(list(tmp_path.glob("outputs/*"))) == 1, "the resumed run continues in its own folder"


@pytest.mark.slow
@pytest.mark.parametrize("signum, status, name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C (SIGINT)")])
def test_signal_stops_with_resume_command(tmp_path, uninterrupted, signum, status, name):
    process = start_until_checkpoint(tmp_path)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == status
    message = " ".join(stderr.split())
    run_id = next(tmp_path.glob("outputs/*")).name
    assert f"error: run {run_id} stopped by {name} at step" in message
    assert f"resume={run_id}`" in message
    assert runs(tmp_path) == []

    result = subprocess.run([IDATTN, "train", *paths(tmp_path), f"resume={run_id}"], cwd=tmp_path,
                            capture_output=True, text=True)   # the saved config supplies the rest
    assert result.returncode == 0, result.stderr
    [row] = runs(tmp_path)
    assert row["run_id"] == run_id
    assert abs(float(row["val_loss"]) - float(uninterrupted["val_loss"])) <= 1e-6


# --- resume= input errors ---------------------------------------------------------------------------

def cli(*args):
    return CliRunner().invoke(app, list(args))


def test_resume_errors_name_fix(tmp_path, quick_run):
    result = cli("train", *paths(tmp_path), "resume=20260101-000000-abcdef")
    assert result.exit_code == 2
    assert "no checkpoint to resume run '20260101-000000-abcdef' from" in result.output

    result = cli("train", *quick_run, "resume=../elsewhere")
    assert result.exit_code == 2
    assert "invalid value '../elsewhere' for resume" in result.output

    result = cli("ablate", "component=rope", *quick_run, "resume=20260101-000000-abcdef")
    assert result.exit_code == 2
    assert "only `idattn train` continues" in result.output


def test_resume_finished_run_rejected(tmp_path, quick_run):
    assert cli("train", *quick_run).exit_code == 0
    run_id = runs(tmp_path)[0]["run_id"]
    result = cli("train", *quick_run, f"resume={run_id}")
    assert result.exit_code == 2
    assert f"run {run_id} already finished" in result.output


def test_resume_damaged_checkpoint_rejected(tmp_path, quick_run):
    run_dir = tmp_path / "outputs" / "20260101-000000-abcdef"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("seed: 1\n")
    torch.save({"step": 1}, run_dir / "checkpoints" / "resume.ckpt")
    data = (run_dir / "checkpoints" / "resume.ckpt").read_bytes()
    (run_dir / "checkpoints" / "resume.ckpt").write_bytes(data[:len(data) // 2])   # as a failed copy leaves it
    result = cli("train", *quick_run, "resume=20260101-000000-abcdef")
    assert result.exit_code == 2
    assert "checkpoints/resume.ckpt is damaged (not a complete torch checkpoint)" in " ".join(result.output.split())


def test_resume_last_starts_new_run(tmp_path, quick_run):
    assert cli("train", *quick_run, "resume=last").exit_code == 0
    assert len(runs(tmp_path)) == 1


# --- non-finite loss --------------------------------------------------------------------------------

@pytest.fixture
def quick_run(tmp_path):
    from helpers import quick_run_overrides

    return quick_run_overrides(tmp_path)


@pytest.fixture
def loss_nan_at_batch(monkeypatch):
    """Make the training loss NaN on the batches (counted from 1) in the returned set."""
    from idattn_cli.training.module import LMModule

    batches, original = set(), LMModule._loss

    def loss(self, batch, reduction="mean"):
        value = original(self, batch, reduction)
        return value * math.nan if self.training and self.batches_seen in batches else value

    monkeypatch.setattr(LMModule, "_loss", loss)
    return batches


def test_nonfinite_loss_stops_run(tmp_path, quick_run, loss_nan_at_batch):
    loss_nan_at_batch.add(3)
    result = cli("train", *quick_run, "trainer.checkpoint_every_n_steps=2")
    assert result.exit_code == 1
    checkpoint = next(tmp_path.glob("outputs/*/checkpoints/resume.ckpt"))
    message = " ".join(result.output.split())
    assert f"error: training loss is nan at step 3; last good checkpoint: {checkpoint} (step 2)" in message
    assert "trainer.skip_nonfinite=true" in message
    assert runs(tmp_path) == []


def test_nonfinite_loss_skipped_and_counted(tmp_path, quick_run, loss_nan_at_batch):
    loss_nan_at_batch.add(2)
    result = cli("train", *quick_run, "trainer.skip_nonfinite=true")
    assert result.exit_code == 0, result.output
    [row] = runs(tmp_path)
    assert row["nonfinite_skipped"] == "1"
    assert row["steps"] == "3", "the skipped batch made no optimizer step, so a fourth batch was trained"
    assert math.isfinite(float(row["val_loss"]))


@pytest.mark.parametrize("accumulate", [1, 2])
def test_resume_after_stop_matches_uninterrupted(tmp_path, quick_run, loss_nan_at_batch, accumulate):
    # a run stopped by a NaN in step 5 resumes from its step-4 checkpoint, also between accumulated batches
    settings = [*quick_run, "trainer.max_steps=6", "trainer.checkpoint_every_n_steps=2",
                f"trainer.accumulate_grad_batches={accumulate}"]
    assert cli("train", *settings, *paths(tmp_path / "uninterrupted")).exit_code == 0
    loss_nan_at_batch.add(5 * accumulate)
    assert cli("train", *settings, *paths(tmp_path / "stopped")).exit_code == 1
    loss_nan_at_batch.clear()

    result = cli("train", *settings, *paths(tmp_path / "stopped"), "resume=last")
    assert result.exit_code == 0, result.output
    [expected], [row] = runs(tmp_path / "uninterrupted"), runs(tmp_path / "stopped")
    assert row["resumed_from_step"] == "4"
    assert row["steps"] == expected["steps"] == "6"
    assert abs(float(row["val_loss"]) - float(expected["val_loss"])) <= 1e-6
