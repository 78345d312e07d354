"""LightningModule for next-token prediction: loss, metrics, AdamW groups, warmup + cosine schedule.

Optimizer groups (AdamW):
  decay     matrices and embeddings                peak lr, weight_decay
  no_decay  norm scales and other vectors           peak lr, no weight decay
  ssm       recurrence and SSM input-norm params    min(peak lr, ssm_lr_cap), no weight decay

The learning rate rises linearly over warmup_steps, then follows a cosine down to min_lr at max_steps.
"""

import math

import lightning as L
import torch
import torch.nn.functional as F


def warmup_cosine(step: int, warmup_steps: int, max_steps: int, floor: float) -> float:
    """LR multiplier: linear warmup to 1, then cosine to `floor` at max_steps, flat after."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class LMModule(L.LightningModule):
    def __init__(self, model, optim_cfg: dict, max_steps: int, bytes_per_token: float = 1.0,
                 config: dict | None = None):
        super().__init__()
        # the whole run config goes into checkpoints, so `load_model` can rebuild the model
        self.save_hyperparameters({"config": config})
        self.model = model
        self.optim_cfg = dict(optim_cfg)
        self.max_steps = max_steps
        self.bytes_per_token = bytes_per_token
        self._val_nats = 0.0
        self._val_tokens = 0
        self.val_metrics: dict[str, float] = {}

    def _loss(self, batch, reduction="mean"):
        inputs, targets = batch[:, :-1], batch[:, 1:]
        logits, _ = self.model(inputs)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction=reduction)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True)
        return loss

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
        self.log("val_loss", loss, prog_bar=True, sync_dist=False, rank_zero_only=True)
        self.log("val_bpb", self.val_metrics["val_bpb"], prog_bar=True, rank_zero_only=True)

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
