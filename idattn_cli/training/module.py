"""LightningModule for next-token prediction: loss, metrics, AdamW groups, warmup + cosine schedule.

Optimizer groups (AdamW):
  decay     matrices and embeddings                peak lr, weight_decay
  no_decay  norm scales and other vectors           peak lr, no weight decay
  ssm       recurrence and SSM input-norm params    min(peak lr, ssm_lr_cap), no weight decay

The learning rate rises linearly over warmup_steps, then follows a cosine down to min_lr at max_steps.

Checkpoints also carry `batches_seen` (the data position: global batches trained on, skipped ones
included) and the RNG states, so a resumed run continues exactly as the uninterrupted one would.

A non-finite training loss stops the run with `NonFiniteLoss`; with `skip_nonfinite` the batch is
skipped instead (no backward, no optimizer step) and counted in `nonfinite_skipped`. Ranks agree on
the decision, so a DDP run skips or stops on all ranks together.
"""

import logging
import math

import lightning as L
import torch
import torch.nn.functional as F

from ..errors import RunError


log = logging.getLogger("idattn")


class NonFiniteLoss(RunError):
    """The training loss became NaN or infinite."""


def warmup_cosine(step: int, warmup_steps: int, max_steps: int, floor: float) -> float:
    """LR multiplier: linear warmup to 1, then cosine to `floor` at max_steps, flat after."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class LMModule(L.LightningModule):
    def __init__(self, model, optim_cfg: dict, max_steps: int, bytes_per_token: float = 1.0,
                 config: dict | None = None, skip_nonfinite: bool = False):
        super().__init__()
        # the whole run config goes into checkpoints, so `load_model` can rebuild the model
        self.save_hyperparameters({"config": config})
        self.model = model
        self.optim_cfg = dict(optim_cfg)
        self.max_steps = max_steps
        self.bytes_per_token = bytes_per_token
        self.skip_nonfinite = skip_nonfinite
        self.batches_seen = 0
        self.nonfinite_skipped = 0
        self.last_train_loss = math.nan   # of the global batch (averaged over ranks)
        self.resumed_from_step: int | None = None
        self.describe_checkpoint = lambda: "no checkpoint written yet"   # set by train() for NonFiniteLoss
        self._val_nats = 0.0
        self._val_tokens = 0
        self.val_metrics: dict[str, float] = {}

    def _loss(self, batch, reduction="mean"):
        inputs, targets = batch[:, :-1], batch[:, 1:]
        logits, _ = self.model(inputs)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction=reduction)

    def training_step(self, batch, batch_idx):
        self.batches_seen += 1
        loss = self._loss(batch)
        mean_loss = loss.detach()
        if self.trainer.world_size > 1:   # the loss of the global batch, as one process would see it
            mean_loss = self.trainer.strategy.reduce(mean_loss, reduce_op="mean")
        self.last_train_loss = float(mean_loss)
        if not math.isfinite(self.last_train_loss):   # equal on all ranks, so they stop or skip together
            return self._non_finite(self.last_train_loss)
        self.log("train_loss", mean_loss, prog_bar=True)
        return loss

    def _non_finite(self, loss):
        step = self.trainer.global_step + 1   # the optimizer step this batch belongs to, counted from 1
        if not self.skip_nonfinite:
            raise NonFiniteLoss(f"training loss is {loss} at step {step}; last good checkpoint: "
                                f"{self.describe_checkpoint()}. Lower optim.lr or raise optim.warmup_steps and "
                                "resume with resume=<run id>, or set trainer.skip_nonfinite=true to skip such steps")
        self.nonfinite_skipped += 1
        log.warning("step %d: training loss is %s, batch skipped (%d so far)", step, loss, self.nonfinite_skipped)
        return None   # Lightning runs no backward and no optimizer step for this batch

    def on_save_checkpoint(self, checkpoint):
        checkpoint["data_position"] = self.batches_seen
        checkpoint["nonfinite_skipped"] = self.nonfinite_skipped
        checkpoint["rng_states"] = {"torch": torch.get_rng_state(),
                                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}

    def on_load_checkpoint(self, checkpoint):
        self.resumed_from_step = checkpoint.get("global_step")
        self.batches_seen = checkpoint.get("data_position", 0)
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        if datamodule is not None:   # restored before the train dataloader is built, so it starts there
            datamodule.start_batch = self.batches_seen
        self.nonfinite_skipped = checkpoint.get("nonfinite_skipped", 0)
        states = checkpoint.get("rng_states")
        if states:
            torch.set_rng_state(states["torch"])
            if states["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(states["cuda"])

    def on_validation_epoch_start(self):
        self._val_nats, self._val_tokens = 0.0, 0

    def validation_step(self, batch, batch_idx):
        self._val_nats += float(self._loss(batch, reduction="sum"))
        self._val_tokens += batch[:, 1:].numel()

    def on_validation_epoch_end(self):
        if self._val_tokens == 0:
            return
        totals = torch.tensor([self._val_nats, float(self._val_tokens)], dtype=torch.float64, device=self.device)
        nats, tokens = self.all_gather(totals).reshape(-1, 2).sum(0).tolist()
        loss = nats / tokens
        self.val_metrics = {
            "val_loss": loss,
            "val_ppl": math.exp(loss),
            "val_bpb": loss / math.log(2) / self.bytes_per_token,
            "val_tokens": int(tokens),
        }
        # equal on every rank already: sync_dist only marks them as synchronized for Lightning
        self.log("val_loss", loss, prog_bar=True, sync_dist=True)
        self.log("val_bpb", self.val_metrics["val_bpb"], prog_bar=True, sync_dist=True)

    def configure_optimizers(self):
        cfg = self.optim_cfg
        ssm_ids = {id(p) for p in self.model.ssm_parameters()}
        decay, no_decay, ssm = [], [], []
        for p in self.model.parameters():
            if not p.requires_grad:
                continue
            if id(p) in ssm_ids:
                ssm.append(p)
            elif p.dim() >= 2:
                decay.append(p)
            else:
                no_decay.append(p)

        lr, ssm_lr = cfg["lr"], min(cfg["lr"], cfg["ssm_lr_cap"])
        groups = [
            {"params": decay, "lr": lr, "weight_decay": cfg["weight_decay"], "name": "decay"},
            {"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": "no_decay"},
            {"params": ssm, "lr": ssm_lr, "weight_decay": 0.0, "name": "ssm"},
        ]
        groups = [group for group in groups if group["params"]]
        optimizer = torch.optim.AdamW(groups, betas=tuple(cfg["betas"]), eps=cfg["eps"])

        # each group decays to the same absolute min_lr, so its floor is min_lr / its own peak
        lambdas = [
            lambda step, peak=group["lr"]: warmup_cosine(step, cfg["warmup_steps"], self.max_steps,
                                                         min(1.0, cfg["min_lr"] / peak))
            for group in groups
        ]
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
