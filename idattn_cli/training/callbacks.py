"""Callbacks: metric lines in the log (progress bars stay blank when stdout is not a terminal) and
training throughput."""

import logging
import time

import lightning as L

log = logging.getLogger("idattn")


class MetricLogger(L.Callback):
    """Log `step, train_loss, lr` at the first and last step and every `every_n_steps` steps, and
    every validation result."""

    def __init__(self, every_n_steps: int, max_steps: int):
        self.every_n_steps, self.max_steps = every_n_steps, max_steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if outputs is None:   # a batch skipped for a non-finite loss; the module logs it
            return
        if trainer.is_global_zero and (step % self.every_n_steps == 0 or step in (1, self.max_steps)):
            lr = trainer.optimizers[0].param_groups[0]["lr"]
            log.info("step %d/%d  train_loss %.4f  lr %.2e", step, self.max_steps, pl_module.last_train_loss, lr)

    def on_validation_end(self, trainer, pl_module):
        metrics = pl_module.val_metrics
        if trainer.is_global_zero and metrics and not trainer.sanity_checking:
            log.info("step %d  val_loss %.4f  val_ppl %.3f  val_bpb %.4f  (%d tokens)", trainer.global_step,
                     metrics["val_loss"], metrics["val_ppl"], metrics["val_bpb"], metrics["val_tokens"])


class Throughput(L.Callback):
    """Training tokens per second over all optimizer steps after the first (which pays one-off costs),
    and the wall time of fitting. Both are saved in checkpoints, so they cover all parts of a resumed run."""

    def __init__(self):
        self.tokens = 0
        self.seconds = 0.0
        self._start = None
        self.last_train_loss = float("nan")
        self.fit_seconds_before = 0.0   # fitting time of earlier parts of a resumed run
        self._fit_start = None

    def on_fit_start(self, trainer, pl_module):
        self._fit_start = time.perf_counter()

    @property
    def train_seconds(self) -> float:
        """Wall-clock seconds spent fitting, in this process and in the parts it resumed from."""
        ongoing = time.perf_counter() - self._fit_start if self._fit_start is not None else 0.0
        return self.fit_seconds_before + ongoing

    def on_fit_end(self, trainer, pl_module):
        self.fit_seconds_before, self._fit_start = self.train_seconds, None

    def state_dict(self) -> dict:
        return {"tokens": self.tokens, "seconds": self.seconds, "last_train_loss": self.last_train_loss,
                "train_seconds": self.train_seconds}

    def load_state_dict(self, state: dict) -> None:
        self.tokens, self.seconds = state["tokens"], state["seconds"]
        self.last_train_loss, self.fit_seconds_before = state["last_train_loss"], state["train_seconds"]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if outputs is None:   # a batch skipped for a non-finite loss
            return
        self.last_train_loss = pl_module.last_train_loss
        if trainer.global_step > 1:
            self.seconds += time.perf_counter() - self._start
            self.tokens += batch[:, 1:].numel() * trainer.world_size

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else float("nan")
