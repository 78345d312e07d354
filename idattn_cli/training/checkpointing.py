"""Checkpoints a killed run can resume from.

`AtomicCheckpointIO` writes each checkpoint to a temporary file in the same folder, syncs it to disk and
renames it over the old one. A kill at any moment so leaves the previous checkpoint or the new one,
never a partial file. `ResumeCheckpoint` saves `checkpoints/resume.ckpt` every
trainer.checkpoint_every_n_steps optimizer steps, and once more when the run receives SIGTERM.
"""

import logging
import os
import tempfile
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO

log = logging.getLogger("idattn")

RESUME_NAME = "resume.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to a temporary file, fsync, then os.replace onto the target path."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _fsync_folder(path.parent)   # the rename itself survives a power cut only once the folder is synced


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:   # some systems cannot open folders, and the rename is atomic without the sync
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class ResumeCheckpoint(L.Callback):
    """Save `folder/resume.ckpt` every `every_n_steps` optimizer steps and when SIGTERM arrives.

    `last_step` and `last_path` name the newest checkpoint written (None before the first).
    """

    def __init__(self, folder: str | Path, every_n_steps: int):
        self.path = Path(folder) / RESUME_NAME
        self.every_n_steps = every_n_steps
        self.last_step: int | None = None
        self.last_path: Path | None = None
        self.previous_step = 0

    def on_train_start(self, trainer, pl_module):
        self.previous_step = trainer.global_step   # a resumed run starts at its checkpoint's step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        # save only after the batch that completed an optimizer step: with gradient accumulation, a
        # checkpoint between steps would lose the gradients accumulated so far
        if step == self.previous_step:
            return
        self.previous_step = step
        stopping = trainer.received_sigterm
        if trainer.world_size > 1:   # saving is collective, so every rank must agree to save
            stopping = trainer.strategy.reduce_boolean_decision(stopping, all=False)
        if step % self.every_n_steps == 0 or stopping:
            self.save(trainer)

    def save(self, trainer) -> None:
        trainer.save_checkpoint(self.path)   # every rank calls it, and only rank 0 writes
        self.last_step, self.last_path = trainer.global_step, self.path
        for logger in trainer.loggers:   # flush the metrics logged so far, so the logs reach the checkpoint
            logger.save()
        if trainer.is_global_zero:
            log.info("step %d  checkpoint %s", trainer.global_step, self.path)

    def describe(self) -> str:
        """Name the newest checkpoint for messages, e.g. 'outputs/x/checkpoints/resume.ckpt (step 200)'."""
        if self.last_path is None:
            return "no checkpoint written yet"
        return f"{self.last_path} (step {self.last_step})"
