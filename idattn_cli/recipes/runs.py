"""Find a trained run: by run id, or the newest row of runs.csv trained with the same config.

Two runs match when their training config matches: the sections that decide the trained weights and
the validation numbers (`TRAINING_SECTIONS`). Labels, paths and the settings of the evaluation
recipes do not count, so `idattn extrapolate` and `idattn eval` find the run that `idattn train`
made from the same overrides.
"""

import csv
import logging
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..errors import UserError

log = logging.getLogger("idattn")

TRAINING_SECTIONS = ("seed", "model", "mixer", "data", "tokenizer", "trainer", "optim")
# trainer settings that decide how a run is executed, checkpointed or logged, not what it learns: a
# DDP run trains on the same global batches as a single-device one (data/samplers.py)
EXECUTION_KEYS = ("accelerator", "devices", "num_nodes", "strategy", "log_every_n_steps", "checkpoint_every_n_steps")


@dataclass
class Run:
    run_id: str
    checkpoint: Path
    row: dict          # the run's row of runs.csv, values as strings
    trained_now: bool  # True when resolve_run had to train it


def training_config(config: dict | DictConfig) -> dict:
    """Return the sections of a run config that decide its weights and validation numbers."""
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)
    sections = {key: config.get(key) for key in TRAINING_SECTIONS}
    trainer = sections["trainer"]
    if trainer:
        if trainer.get("precision") is None:   # as train() records it
            from ..training.precision import resolve_precision   # imports torch, which `idattn results` avoids

            trainer = {**trainer, "precision": resolve_precision(OmegaConf.create(trainer))}
        sections["trainer"] = {key: value for key, value in trainer.items() if key not in EXECUTION_KEYS}
    return sections


def config_key(config: dict | DictConfig) -> str:
    """Return a 12-hex-digit digest of the training config; equal configs give equal keys."""
    text = json.dumps(training_config(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_rows(path: str | Path) -> list[dict]:
    """Return the rows of a results CSV as dicts of strings, or [] if the file does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def find_run(results_dir: str | Path, run_id: str | None = None, key: str | None = None) -> Run | None:
    """Return the run with `run_id`, or the newest run whose config_key is `key` and whose checkpoint exists."""
    for row in reversed(read_rows(Path(results_dir) / "runs.csv")):
        checkpoint = Path(row.get("checkpoint") or "")
        if run_id is not None and row.get("run_id") == run_id:
            return Run(run_id, checkpoint, row, trained_now=False)
        if run_id is None and row.get("config") and checkpoint.is_file():
            if config_key(json.loads(row["config"])) == key:
                return Run(row["run_id"], checkpoint, row, trained_now=False)
    return None


def check_run_id(results_dir: str | Path, run_id: str | None) -> None:
    """Raise UserError now if `run_id` is set but not in runs.csv, before slower checks or work."""
    if run_id is not None and find_run(results_dir, run_id=str(run_id)) is None:
        raise UserError(f"run id {run_id!r} not found in {Path(results_dir) / 'runs.csv'}; "
                        "list the runs with `idattn results runs`, or leave the run id unset "
                        "to use (or train) the run of this config")


def warn_unused_overrides(run_id: str | None, overrides: list[str] | None) -> None:
    """Warn that training overrides do not change a run chosen by id (they only pick a run without one)."""
    ignored = [o for o in overrides or [] if not o.lstrip("+~").startswith(("paths.", "extrapolate.", "eval."))]
    if run_id is not None and ignored:
        log.warning("run %s is scored as it was trained; these overrides do not change it: %s",
                    run_id, " ".join(ignored))


def resolve_run(cfg: DictConfig, overrides: list[str] | None, run_id: str | None = None) -> Run:
    """Return the run named by `run_id`, else the newest run trained with cfg's training config.

    With no such run, train one now with `idattn train`'s recipe (a row lands in runs.csv).
    """
    results_dir = Path(cfg.paths.results_dir)
    if run_id is not None:
        run = find_run(results_dir, run_id=str(run_id))
        if run is None:
            raise UserError(f"run id {run_id!r} not found in {results_dir / 'runs.csv'}; "
                            "list the runs with `idattn results runs`, or leave the run id unset "
                            "to use (or train) the run of this config")
        if not run.checkpoint.is_file():
            raise UserError(f"checkpoint {run.checkpoint} of run {run_id} not found; "
                            "it was moved or deleted, so retrain with `idattn train`")
        return run
    from .train import train

    run = find_run(results_dir, key=config_key(cfg))
    if run is not None:
        return run
    row = train(cfg, overrides)
    return Run(row["run_id"], Path(row["checkpoint"]), {k: str(v) for k, v in row.items()}, trained_now=True)
