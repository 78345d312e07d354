"""`idattn train`: fit, validate on the whole validation split, save a checkpoint, append a row.

A run writes `outputs/<run_id>/checkpoints/resume.ckpt` every trainer.checkpoint_every_n_steps steps
and on SIGTERM, and `resume=last` or `resume=<run_id>` continues from it (resume.py). Under DDP or
FSDP every rank runs this function. Rank 0 alone creates the run folder and writes files and rows.
The other ranks use rank 0's run id, which the launcher passes to them in IDATTN_RUN_ID.
"""

import json
import logging
import os
import sys
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from omegaconf import DictConfig, OmegaConf

from .. import provenance
from ..data.datamodule import build_datamodule
from ..data.samplers import per_rank_batch_size
from ..data.tokenizers import build_tokenizer
from ..models import build_model
from ..errors import RunError, UserError
from ..results.store import append_row
from ..training.callbacks import MetricLogger, Throughput
from ..training.checkpointing import AtomicCheckpointIO, ResumeCheckpoint
from ..training.module import LMModule
from ..training.precision import resolve_precision
from .resume import find_resume

RUN_ID_ENV = "IDATTN_RUN_ID"

log = logging.getLogger("idattn")

# Lightning's import sets its loggers to INFO (device banners, tips, checkpoint-loading notes), so
# they are turned down here, after that import, wherever this module is first imported.
for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def build_trainer(cfg: DictConfig, output_dir: Path, callbacks: list, log_version: str = "") -> L.Trainer:
    """Build the Trainer; metrics go to output_dir/logs/<log_version>/metrics.csv."""
    t = cfg.trainer
    progress_bar = sys.stdout.isatty()
    if progress_bar:
        from lightning.pytorch.callbacks import RichProgressBar
        callbacks = [*callbacks, RichProgressBar()]
    try:
        return _trainer(t, output_dir, callbacks, log_version, progress_bar)
    except (ValueError, MisconfigurationException) as error:   # Lightning's checks of these settings
        raise UserError(f"invalid trainer settings (accelerator={t.accelerator}, devices={t.devices}, "
                        f"strategy={t.strategy}, num_nodes={t.num_nodes}): {str(error).splitlines()[0]}") from error


def _trainer(t, output_dir: Path, callbacks: list, log_version: str, progress_bar: bool) -> L.Trainer:
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        use_distributed_sampler=False,   # the datamodules shard by rank themselves (data/samplers.py)
        plugins=[AtomicCheckpointIO()],
        precision=resolve_precision(t),
        max_steps=t.max_steps,
        val_check_interval=min(t.val_every_n_steps, t.max_steps) * t.accumulate_grad_batches,
        check_val_every_n_epoch=None,
        limit_val_batches=t.limit_val_batches,
        num_sanity_val_steps=0,
        gradient_clip_val=t.gradient_clip_val,
        accumulate_grad_batches=t.accumulate_grad_batches,
        log_every_n_steps=t.log_every_n_steps,
        default_root_dir=str(output_dir),
        logger=L.pytorch.loggers.CSVLogger(str(output_dir), name="logs", version=log_version),
        enable_checkpointing=False,      # ResumeCheckpoint writes the checkpoints
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        callbacks=callbacks,
    )


def recipe_name(overrides: list[str] | None) -> str:
    """Return the preset chosen with `recipe=<name>` on the command line, or an empty string."""
    chosen = [o.split("=", 1)[1] for o in overrides or [] if o.lstrip("+").startswith("recipe=")]
    return chosen[-1] if chosen else ""


class Interrupted(RunError):
    """The run received SIGTERM (exit status 143) or SIGINT (130), as for a process ended by that signal."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _fit(trainer, module, datamodule, resume, run_id: str, checkpoints, overrides: list[str] | None) -> None:
    """Fit, and turn Lightning's exits on SIGTERM and Ctrl-C into `Interrupted` with the command that continues."""
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume.checkpoint) if resume else None)
    except SystemExit as stop:   # Lightning exits with status 0 on SIGTERM and 1 on Ctrl-C, with no message
        if not trainer.interrupted:
            raise
        signal, status = ("SIGTERM", 143) if isinstance(stop, SIGTERMException) else ("Ctrl-C (SIGINT)", 130)
        command = " ".join(["idattn train", *[o for o in overrides or [] if o.startswith("paths.")]])
        raise Interrupted(f"run {run_id} stopped by {signal} at step {trainer.global_step}; checkpoint: "
                          f"{checkpoints.describe()}; continue with `{command} resume={run_id}`", status) from stop


def train(cfg: DictConfig, overrides: list[str] | None = None) -> dict:
    """Train the configured model and return the results row (also appended to runs.csv)."""
    cfg.trainer.precision = resolve_precision(cfg.trainer)  # saved and recorded as actually used
    resume = find_resume(cfg)
    if resume is not None:
        cfg = _resumed_config(cfg, resume, overrides)
    run_id = resume.run_id if resume else _shared_run_id()
    rank_zero = provenance.global_rank() == 0
    _check_strategy(cfg.trainer)
    _warn_about_settings(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    tokenizer = build_tokenizer(cfg.tokenizer, cfg.paths.data_dir)
    datamodule = build_datamodule(cfg.data, tokenizer, cfg.model.context_length, seed=cfg.seed,
                                  data_dir=cfg.paths.data_dir)
    datamodule.setup()
    output_dir = Path(cfg.paths.output_dir) / run_id
    throughput = Throughput()   # its counts are saved in checkpoints, so they span the resumed parts
    checkpoints = ResumeCheckpoint(output_dir / "checkpoints", cfg.trainer.checkpoint_every_n_steps)
    metric_logger = MetricLogger(cfg.trainer.log_every_n_steps, cfg.trainer.max_steps)
    # a resumed part logs into a folder of its own: CSVLogger would replace the earlier parts' metrics.csv
    log_version = "resumed-" + provenance.new_run_id() if resume else ""
    trainer = build_trainer(cfg, output_dir, [throughput, checkpoints, metric_logger], log_version)
    per_rank_batch_size(cfg.data.batch_size, trainer.num_devices * trainer.num_nodes)   # before any process starts

    # the run folder appears only once data and trainer settings are checked, so no empty folder is left
    if rank_zero and resume is None:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
        (output_dir / "overrides.txt").write_text("".join(f"{o}\n" for o in overrides or []))
    model = build_model(cfg.model, cfg.mixer, tokenizer.vocab_size)
    module = LMModule(model, cfg.optim, cfg.trainer.max_steps, datamodule.bytes_per_token(),
                      config=OmegaConf.to_container(cfg), skip_nonfinite=cfg.trainer.skip_nonfinite)
    module.describe_checkpoint = checkpoints.describe
    n_params = sum(p.numel() for p in model.parameters())
    log.info("run %s: %s %s, %s parameters, output in %s%s", run_id, cfg.model.name, cfg.mixer.name,
             f"{n_params:,}", output_dir, f", resuming from {resume.checkpoint}" if resume else "")

    os.environ[RUN_ID_ENV] = run_id   # DDP's launcher copies the environment into the other ranks
    _fit(trainer, module, datamodule, resume, run_id, checkpoints, overrides)

    trainer.limit_val_batches = cfg.trainer.final_limit_val_batches
    trainer.validate(module, datamodule=datamodule, verbose=False)
    checkpoint = output_dir / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(checkpoint)
    row = {
        "run_id": run_id,
        "timestamp": provenance.utc_timestamp(),
        "command": "train",
        "recipe": recipe_name(overrides),
        "run_name": cfg.run_name or "",
        "model": cfg.model.name,
        "mixer": cfg.mixer.name,
        "data": cfg.data.name,
        "tokenizer": cfg.tokenizer.name,
        "seed": cfg.seed,
        "steps": trainer.global_step,
        "resumed_from_step": module.resumed_from_step if module.resumed_from_step is not None else "",
        "nonfinite_skipped": module.nonfinite_skipped,
        "context_length": cfg.model.context_length,
        "batch_size": cfg.data.batch_size,
        "n_params": n_params,
        "state_size_per_layer": model.state_size_per_layer(cfg.model.context_length),
        "train_loss": throughput.last_train_loss,
        **module.val_metrics,
        "val_unigram_bpb": datamodule.split_unigram_bits["validation"],
        "tokens_per_sec": throughput.tokens_per_second,
        "train_seconds": throughput.train_seconds,
        "precision": cfg.trainer.precision,
        "accelerator": type(trainer.accelerator).__name__.removesuffix("Accelerator").lower(),
        "world_size": trainer.world_size,
        "torch_threads": torch.get_num_threads(),
        "device_name": provenance.device_name(trainer.strategy.root_device),
        "job_id": provenance.job_id(),
        "checkpoint": str(checkpoint),
        "git_revision": provenance.git_revision(),
        **provenance.versions(),
        "mixer_config": json.dumps(OmegaConf.to_container(cfg.mixer), sort_keys=True),
        "overrides": " ".join(_started_with(output_dir, cfg.get("resume")) + list(overrides or [])),
        "config": json.dumps(OmegaConf.to_container(cfg), sort_keys=True),
    }
    append_row(Path(cfg.paths.results_dir) / "runs.csv", row)   # a no-op on ranks other than 0
    if rank_zero:   # last.ckpt contains the same state and more, so the resume point only takes disk space
        checkpoints.path.unlink(missing_ok=True)
    return row


def _started_with(output_dir: Path, resume_value) -> list[str]:
    """Return the overrides that a run continued by resume=<run id> was started with (saved in its folder)."""
    path = output_dir / "overrides.txt"
    if resume_value is None or str(resume_value) == "last" or not path.is_file():
        return []   # resume=last is typed with the original overrides
    return [line for line in path.read_text().splitlines() if line]


def _shared_run_id() -> str:
    """Return a new run id on rank 0; on the other ranks of a distributed run, rank 0's id if launched by it."""
    if provenance.global_rank() != 0 and os.environ.get(RUN_ID_ENV):
        return os.environ[RUN_ID_ENV]
    return provenance.new_run_id()


def _resumed_config(cfg: DictConfig, resume, overrides: list[str] | None) -> DictConfig:
    """Return the config to continue `resume` with: its saved config, with this command's paths."""
    if str(cfg.resume) == "last":
        return cfg   # the saved training config equals this one: that is how resume=last found the run
    ignored = [o for o in overrides or [] if not o.lstrip("+~").startswith(("resume=", "paths."))]
    if ignored:
        log.warning("run %s continues with the config it was started with; these overrides do not change it: %s",
                    resume.run_id, " ".join(ignored))
    saved = resume.config.copy()
    saved.paths, saved.resume = cfg.paths, cfg.resume
    return saved


def _check_strategy(t: DictConfig) -> None:
    if str(t.strategy).startswith("fsdp") and (t.accelerator == "cpu" or not torch.cuda.is_available()):
        raise UserError(f"trainer.strategy={t.strategy} needs GPUs (Lightning runs FSDP on CUDA only); "
                        "use trainer=ddp on CPU, e.g. trainer=ddp trainer.devices=2")


def _warn_about_settings(cfg: DictConfig) -> None:
    if cfg.optim.warmup_steps >= cfg.trainer.max_steps:
        log.warning("optim.warmup_steps=%d >= trainer.max_steps=%d, so the learning rate never reaches "
                    "optim.lr; set optim.warmup_steps lower for short runs", cfg.optim.warmup_steps,
                    cfg.trainer.max_steps)
    vocab = cfg.model.get("vocab_size")
    if vocab is not None and vocab > cfg.tokenizer.vocab_size:
        log.warning("model.vocab_size=%d is larger than the %s tokenizer's %d tokens, so the extra embedding "
                    "and output rows are never used as inputs or targets", vocab, cfg.tokenizer.name,
                    cfg.tokenizer.vocab_size)
