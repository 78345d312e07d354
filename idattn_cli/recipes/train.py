"""`idattn train`: fit, validate on the whole validation split, save a checkpoint, append a row."""

import json
import logging
import sys
import time
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from .. import provenance
from ..data.datamodule import build_datamodule
from ..data.tokenizers import build_tokenizer
from ..models import build_model
from ..results.store import append_row
from ..training.callbacks import MetricLogger, Throughput
from ..training.module import LMModule
from ..training.precision import resolve_precision

log = logging.getLogger("idattn")

# Lightning's import sets its loggers to INFO (device banners, tips, checkpoint-loading notes), so
# they are turned down here, after that import, wherever this module is first imported.
for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def build_trainer(cfg: DictConfig, output_dir: Path, callbacks: list) -> L.Trainer:
    t = cfg.trainer
    progress_bar = sys.stdout.isatty()
    if progress_bar:
        from lightning.pytorch.callbacks import RichProgressBar
        callbacks = [*callbacks, RichProgressBar()]
    return L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
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
        logger=L.pytorch.loggers.CSVLogger(str(output_dir), name="logs", version=""),
        enable_checkpointing=False,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        callbacks=callbacks,
    )


def recipe_name(overrides: list[str] | None) -> str:
    """Return the preset chosen with `recipe=<name>` on the command line, or an empty string."""
    chosen = [o.split("=", 1)[1] for o in overrides or [] if o.lstrip("+").startswith("recipe=")]
    return chosen[-1] if chosen else ""


def train(cfg: DictConfig, overrides: list[str] | None = None) -> dict:
    """Train the configured model and return the results row (also appended to runs.csv)."""
    run_id = provenance.new_run_id()
    cfg.trainer.precision = resolve_precision(cfg.trainer)  # saved and recorded as actually used
    if cfg.optim.warmup_steps >= cfg.trainer.max_steps:
        log.warning("optim.warmup_steps=%d >= trainer.max_steps=%d, so the learning rate never reaches "
                    "optim.lr; set optim.warmup_steps lower for short runs", cfg.optim.warmup_steps,
                    cfg.trainer.max_steps)
    vocab = cfg.model.get("vocab_size")
    if vocab is not None and vocab > cfg.tokenizer.vocab_size:
        log.warning("model.vocab_size=%d is larger than the %s tokenizer's %d tokens, so the extra embedding "
                    "and output rows are never used as inputs or targets", vocab, cfg.tokenizer.name,
                    cfg.tokenizer.vocab_size)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    tokenizer = build_tokenizer(cfg.tokenizer, cfg.paths.data_dir)
    datamodule = build_datamodule(cfg.data, tokenizer, cfg.model.context_length, seed=cfg.seed,
                                  data_dir=cfg.paths.data_dir)
    datamodule.setup()
    # the run folder appears only once the data is in hand, so a data error leaves no empty folder
    output_dir = Path(cfg.paths.output_dir) / run_id
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    model = build_model(cfg.model, cfg.mixer, tokenizer.vocab_size)
    module = LMModule(model, cfg.optim, cfg.trainer.max_steps, datamodule.bytes_per_token(),
                      config=OmegaConf.to_container(cfg))
    n_params = sum(p.numel() for p in model.parameters())
    log.info("run %s: %s %s, %s parameters, output in %s", run_id, cfg.model.name, cfg.mixer.name,
             f"{n_params:,}", output_dir)

    throughput = Throughput()
    trainer = build_trainer(cfg, output_dir, [throughput, MetricLogger(cfg.trainer.log_every_n_steps, cfg.trainer.max_steps)])
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    train_seconds = time.perf_counter() - started

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
        "context_length": cfg.model.context_length,
        "batch_size": cfg.data.batch_size,
        "n_params": n_params,
        "state_size_per_layer": model.state_size_per_layer(cfg.model.context_length),
        "train_loss": throughput.last_train_loss,
        **module.val_metrics,
        "val_unigram_bpb": datamodule.split_unigram_bits["validation"],
        "tokens_per_sec": throughput.tokens_per_second,
        "train_seconds": train_seconds,
        "precision": cfg.trainer.precision,
        "accelerator": type(trainer.accelerator).__name__.removesuffix("Accelerator").lower(),
        "world_size": trainer.world_size,
        "torch_threads": torch.get_num_threads(),
        "device_name": provenance.device_name(trainer.strategy.root_device),
        "checkpoint": str(checkpoint),
        "git_revision": provenance.git_revision(),
        **provenance.versions(),
        "mixer_config": json.dumps(OmegaConf.to_container(cfg.mixer), sort_keys=True),
        "overrides": " ".join(overrides or []),
        "config": json.dumps(OmegaConf.to_container(cfg), sort_keys=True),
    }
    if trainer.is_global_zero:
        append_row(Path(cfg.paths.results_dir) / "runs.csv", row)
    return row
