"""Scale-out through Lightning strategies and Hydra launchers, run from the console script.

DDP runs 2 CPU processes (gloo); multirun runs each job through hydra/launcher=submitit_local (local
processes) or the basic launcher (one after another in the calling process). The DDP and submitit
tests are marked slow (about 50 s together).
"""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

IDATTN = str(Path(sys.executable).parent / "idattn")

RUN = ["model.n_layers=1", "model.context_length=64", "data.batch_size=4", "trainer.max_steps=30",
       "trainer.val_every_n_steps=30", "trainer.limit_val_batches=2", "trainer.final_limit_val_batches=40",
       "optim.warmup_steps=5", "trainer.log_every_n_steps=10"]


def idattn(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([IDATTN, *args, f"paths.results_dir={cwd / 'results'}", f"paths.output_dir={cwd / 'outputs'}"],
                          cwd=cwd, capture_output=True, text=True, timeout=900, env=env)


def rows(folder: Path, table: str = "runs") -> list[dict]:
    path = folder / "results" / f"{table}.csv"
    return list(csv.DictReader(path.open())) if path.exists() else []


@pytest.mark.slow
def test_ddp_two_processes_matches_one(tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    single.mkdir(), ddp.mkdir()
    assert idattn("train", *RUN, cwd=single).returncode == 0
    result = idattn("train", *RUN, "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", cwd=ddp)
    assert result.returncode == 0, result.stderr

    [one], [two] = rows(single), rows(ddp)
    assert (one["world_size"], two["world_size"]) == ("1", "2")
    assert one["steps"] == two["steps"] == "30"
    assert one["val_tokens"] == two["val_tokens"], "both scored the same validation blocks"
    assert abs(float(one["val_loss"]) - float(two["val_loss"])) <= 1e-4
    assert abs(float(one["train_loss"]) - float(two["train_loss"])) <= 1e-4
    assert [p.name for p in (ddp / "outputs").iterdir()] == [two["run_id"]], "one output folder for both ranks"
    assert result.stdout.count("results row appended") == 1, "only rank 0 prints the summary"


def test_fsdp_on_cpu_rejected(tmp_path):
    result = idattn("train", "trainer=fsdp", cwd=tmp_path)
    assert result.returncode == 2
    assert "needs GPUs (Lightning runs FSDP on CUDA only); use trainer=ddp on CPU" in result.stderr
    assert not (tmp_path / "outputs").exists()


QUICK = ["model.n_layers=1", "model.context_length=64", "data.batch_size=4", "trainer.max_steps=3",
         "trainer.val_every_n_steps=3", "trainer.limit_val_batches=2", "trainer.final_limit_val_batches=2",
         "optim.warmup_steps=1"]


@pytest.mark.slow
def test_ablate_multirun_submitit_jobs(tmp_path):
    result = idattn("ablate", "component=rope", "-m", "hydra/launcher=submitit_local", *QUICK, cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    ablations = rows(tmp_path, "ablations")
    assert [(row["cell"], row["status"]) for row in ablations] == [("full", "trained"), ("rope=false", "trained")]
    runs = {row["run_id"]: row for row in rows(tmp_path)}
    job_ids = {runs[row["run_id"]]["job_id"] for row in ablations}
    assert len(job_ids) == 2, "each cell trained in its own submitit job"
    assert "" not in job_ids
    sweep = next((tmp_path / "outputs" / "multirun").iterdir())
    assert sorted(p.name for p in (sweep / ".submitit").iterdir() if p.name in job_ids) == sorted(job_ids)

    again = idattn("ablate", "component=rope", "-m", "hydra/launcher=submitit_local", *QUICK, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(rows(tmp_path, "ablations")) == 2, "cells with rows start no jobs and add no rows"


def test_train_multirun_basic_launcher(tmp_path):
    result = idattn("train", "-m", "seed=1,2", *QUICK, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(row["seed"] for row in rows(tmp_path)) == ["1", "2"]
    assert "2 runs" in result.stdout


def test_bad_job_rejected_before_launch(tmp_path):
    result = idattn("train", "-m", "seed=1,-2", *QUICK, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: invalid value -2 for seed")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_launcher_without_multirun_rejected(tmp_path):
    result = idattn("ablate", "component=rope", "hydra/launcher=submitit_local", cwd=tmp_path)
    assert result.returncode == 2
    assert "hydra/launcher=submitit_local sets how multirun jobs are launched; add -m" in result.stderr
